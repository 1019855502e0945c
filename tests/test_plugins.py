"""The plugin host: entry points, allow/block lists, duplicate names, broken plugins, hooks."""

from __future__ import annotations

import json
import sys
import textwrap

import pluggy
import pytest
from conftest import curator_cli, pipeline_file

from curator import FilterResult, FilterStep, hookimpl, plugins
from curator.catalog import connect
from curator.config import load_pipeline
from curator.errors import PluginError
from curator.runner import run_pipeline


def test_builtin_plugins_load_through_entry_points():
    state = plugins.get_state()
    assert {"builtin", "datatrove"} <= set(state.infos)
    assert state.infos["builtin"].distribution == "corpus-curator"
    assert {"noop", "gopher_quality", "gopher_repetition", "c4_quality", "fineweb_quality", "percentile_threshold"} <= {n for n, _ in state.registry}
    assert state.registry.lookup("gopher_quality").plugin == "datatrove"


def test_allow_list_env_loads_only_named_plugins(monkeypatch):
    monkeypatch.setenv("CURATOR_LOAD_PLUGINS", "builtin")
    names = {n for n, _ in plugins.get_registry()}
    assert "noop" in names and "gopher_quality" not in names


def test_disable_plugin_blocks_it():
    plugins.disable_plugins(["datatrove"])
    state = plugins.get_state()
    assert "datatrove" in state.disabled
    assert "gopher_quality" not in state.registry and "noop" in state.registry


class _Dup(FilterStep):
    name = "noop"

    def filter(self, batch):
        return FilterResult([True] * batch.num_rows)


class _DupPlugin:
    @hookimpl
    def register_steps(self, register):
        register(_Dup)


def test_duplicate_step_name_names_both_plugins(register_plugin):
    register_plugin(_DupPlugin(), "my-dup-plugin")
    with pytest.raises(PluginError) as err:
        plugins.get_registry()
    assert "'builtin'" in str(err.value) and "'my-dup-plugin'" in str(err.value) and "'noop'" in str(err.value)


def test_misspelled_hook_fails_loudly():
    class Typo:
        @hookimpl
        def register_step(self, register):  # missing "s"
            pass

    with pytest.raises(pluggy.PluginValidationError):
        plugins.register_plugin(Typo(), "typo")


@pytest.fixture
def broken_entry_point(tmp_path, monkeypatch):
    """A real installed distribution whose entry point module fails to import."""
    site = tmp_path / "site"
    dist = site / "broken_plugin-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[curator]\nbroken = broken_plugin_module\n")
    (site / "broken_plugin_module.py").write_text("raise RuntimeError('this plugin is broken on purpose')\n")
    monkeypatch.syspath_prepend(str(site))
    return site


def test_plugin_that_fails_to_import_is_reported_by_name(broken_entry_point):
    state = plugins.get_state()
    assert "broken" in state.failed
    assert "this plugin is broken on purpose" in state.failed["broken"]
    assert "noop" in state.registry  # the others still load
    out = curator_cli("plugins", "--json", env={"PYTHONPATH": str(broken_entry_point)}).stdout
    rows = {r["name"]: r for r in json.loads(out)}
    assert "RuntimeError" in rows["broken"]["error"]


def test_cli_disable_plugin_and_plugins_listing():
    rows = {r["name"]: r for r in json.loads(curator_cli("plugins", "--json").stdout)}
    assert rows["builtin"]["hooks"] == ["register_steps"]
    assert rows["datatrove"]["version"]
    out = curator_cli("--disable-plugin", "datatrove", "steps", "--json").stdout
    assert "gopher_quality" not in {r["name"] for r in json.loads(out)}


def test_steps_json_lists_parameters_with_types_and_defaults():
    steps = {r["name"]: r for r in json.loads(curator_cli("steps", "--json").stdout)}
    gopher = {p["name"]: p for p in steps["gopher_quality"]["parameters"]}
    assert gopher["min_doc_words"]["default"] == 50
    assert "int" in gopher["min_doc_words"]["type"]
    assert steps["gopher_quality"]["plugin"] == "datatrove"
    assert steps["range_filter"]["kind"] == "filter"
    assert steps["percentile_threshold"]["kind"] == "fit"
    assert steps["noop"]["missing_dependencies"] == []


class _SqlPlugin:
    @hookimpl
    def prepare_duckdb(self, connection, run_dir):
        def shout(s: str) -> str:
            return s.upper() + "!"

        connection.create_function("shout", shout)


def test_prepare_duckdb_hook_adds_sql_functions(tmp_path, tiny_shard, register_plugin):
    register_plugin(_SqlPlugin(), "sql-plugin")
    pipe = load_pipeline(pipeline_file(tmp_path, "steps:\n  - step: noop\n"), plugins.get_registry())
    run_pipeline(pipe, tmp_path / "run", inputs=[str(tiny_shard)], progress=False)
    con = connect(tmp_path / "run")
    assert con.execute("SELECT shout('hi')").fetchone()[0] == "HI!"
    assert con.execute("SELECT count(*) FROM kept").fetchone()[0] == 60


def test_register_commands_hook_adds_a_cli_command(tmp_path):
    module = tmp_path / "cmd_plugin.py"
    module.write_text(
        textwrap.dedent(
            """
            import click
            from curator import hookimpl

            @hookimpl
            def register_commands(cli):
                @cli.command(name="hello-plugin")
                def hello():
                    click.echo("hello from a plugin command")
            """
        )
    )
    dist = tmp_path / "cmd_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: cmd-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[curator]\ncmd = cmd_plugin\n")
    out = curator_cli("hello-plugin", env={"PYTHONPATH": str(tmp_path)}).stdout
    assert "hello from a plugin command" in out
    assert sys.modules.get("cmd_plugin") is None  # nothing was imported into this process
