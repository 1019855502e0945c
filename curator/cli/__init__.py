"""The ``curator`` command: one click group, one module per command."""

from __future__ import annotations

import sys
from typing import Any

import click

from curator import plugins
from curator.errors import CuratorError


class CuratorGroup(click.Group):
    """Turns CuratorError into a clean message and exit code 1, no traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CuratorError as exc:
            click.secho(f"Error: {exc}", fg="red", err=True)
            ctx.exit(1)


@click.group(cls=CuratorGroup)
@click.version_option(package_name="corpus-curator")
@click.option("--disable-plugin", "disabled", multiple=True, metavar="NAME", help="Do not load this plugin (repeatable).")
def cli(disabled: tuple[str, ...]) -> None:
    """curator: curate LLM-pretraining corpora with plugins, Parquet shards and DuckDB."""
    plugins.disable_plugins(disabled)


def _preparse_disabled(argv: list[str]) -> list[str]:
    """--disable-plugin must act before plugins add their commands, i.e. before click parses."""
    names = []
    for i, arg in enumerate(argv):
        if arg == "--disable-plugin" and i + 1 < len(argv):
            names.append(argv[i + 1])
        elif arg.startswith("--disable-plugin="):
            names.append(arg.split("=", 1)[1])
    return names


def _add_commands(group: click.Group) -> None:
    from curator.cli import diff, report, run, sql, stats, validate
    from curator.cli import plugin_commands as plugins_cmd

    for command in (run.run, sql.sql, stats.stats, plugins_cmd.plugins_command, plugins_cmd.steps_command, plugins_cmd.new_plugin_command, validate.validate, report.report, diff.diff):
        group.add_command(command)


_add_commands(cli)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    plugins.disable_plugins(_preparse_disabled(argv))
    try:
        plugins.get_plugin_manager().hook.register_commands(cli=cli)
    except CuratorError as exc:
        click.secho(f"Error: {exc}", fg="red", err=True)
        sys.exit(1)
    cli.main(args=argv, prog_name="curator")
