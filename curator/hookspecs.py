"""The hooks a curator plugin may implement.

A plugin is a module (or object) with functions decorated by ``@hookimpl``
and named after one of the specs below. Plugins are found through the entry
point group ``curator``; every hook is called once at start-up (when the CLI
or the registry first needs plugins), never per batch: workers receive step
objects, not the plugin manager.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import click
    import duckdb

    from curator.steps import Step

hookspec = pluggy.HookspecMarker("curator")
hookimpl = pluggy.HookimplMarker("curator")


@hookspec
def register_steps(register: Callable[[type[Step]], None]) -> None:
    """Register step classes by calling ``register(StepClass)`` once per class.

    Called once, the first time the step registry is built. The step's
    ``name`` class attribute is the name pipelines use. Registering a name that
    another plugin already registered is an error that names both plugins.
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add subcommands to the ``curator`` CLI group.

    Called once when the CLI starts, after the built-in commands exist.
    Use ``@cli.command()`` to add a command; a name that already exists is
    replaced, so pick names that are unlikely to clash.
    """


@hookspec
def prepare_duckdb(connection: duckdb.DuckDBPyConnection, run_dir: Path | None) -> None:
    """Add SQL functions, macros or views to a DuckDB connection over a run.

    Called each time curator opens a catalog connection (``curator sql``,
    fit steps, the catalog database file), after the built-in views
    (``kept``, ``rejected``, ``stage_<name>``, ...) exist. ``run_dir`` is the
    run directory, or None for a connection that is not bound to one.
    """
