"""The plugin host: entry points, allow/block lists, duplicate names, broken plugins, hooks."""

from __future__ import annotations

import json
import sys
import textwrap

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

    with pytest.raises(PluginError) as err:
        plugins.register_plugin(Typo(), "typo")
    assert str(err.value).startswith("plugin 'typo': unknown hook 'register_step' (did you mean 'register_steps'?); rename the @hookimpl")
    assert "typo" not in dict(plugins.get_plugin_manager().list_name_plugin())
    assert "noop" in plugins.get_registry()  # the host is unharmed


def _installed(site, dist_name: str, entry: str, module: str, code: str):
    """A real installed distribution (dist-info + module) in ``site`` with a curator entry point."""
    dist = site / f"{dist_name}-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[curator]\n{entry} = {module}\n")
    (site / f"{module}.py").write_text(textwrap.dedent(code))
    return site


MISSPELLED = """
    from curator import hookimpl

    @hookimpl
    def register_step(register):
        pass
"""


def test_entry_point_plugin_with_a_misspelled_hook_is_listed_as_failed(tmp_path, monkeypatch):
    site = _installed(tmp_path / "site", "typo-plugin", "typo", "typo_plugin", MISSPELLED)
    monkeypatch.syspath_prepend(str(site))
    state = plugins.get_state()
    assert state.failed["typo"].startswith("plugin 'typo': unknown hook 'register_step' (did you mean 'register_steps'?)")
    assert "noop" in state.registry
    proc = curator_cli("plugins", env={"PYTHONPATH": str(site)})
    assert "typo: FAILED TO LOAD: plugin 'typo': unknown hook 'register_step'" in proc.stdout
    assert "builtin  (corpus-curator" in proc.stdout and proc.stderr == ""
    # a pipeline naming a step that is not there says that a plugin failed
    bad = curator_cli("validate", str(pipeline_file(tmp_path, "steps:\n  - step: typo_step\n")), env={"PYTHONPATH": str(site)}, check=False)
    assert bad.returncode == 1 and "plugin 'typo' failed to load: `curator plugins` says why" in bad.stderr


BAD_STEPS = """
    from curator import FitStep, MapStep, hookimpl

    class BoomFit(FitStep):
        name = "boom_fit"

        def fit(self, ctx):
            raise ValueError("no seeds in the corpus")

    class WrongShape(MapStep):
        name = "wrong_shape"

        def process(self, batch):
            return {"score": [0.5, 0.5]}   # not one value per row

    @hookimpl
    def register_steps(register):
        register(BoomFit)
        register(WrongShape)
"""


@pytest.fixture
def bad_steps_site(tmp_path, monkeypatch):
    site = _installed(tmp_path / "site", "bad-steps", "badsteps", "bad_steps_plugin", BAD_STEPS)
    monkeypatch.syspath_prepend(str(site))
    return site


def test_exception_in_a_fit_step_is_one_line_naming_plugin_and_step(tmp_path, tiny_shard, bad_steps_site):
    pipe = pipeline_file(tmp_path, "steps:\n  - step: boom_fit\n    name: seeds\n")
    proc = curator_cli("run", str(pipe), "-i", str(tiny_shard), "-o", str(tmp_path / "run"), "-q", env={"PYTHONPATH": str(bad_steps_site)}, check=False)
    assert proc.returncode == 1
    assert proc.stderr == (
        "Error: plugin 'badsteps', step 'seeds' (boom_fit) raised ValueError in fit(): no seeds in the corpus "
        "(at bad_steps_plugin.py:8 in fit); fix the step's fit() (or its parameters), or remove it from the pipeline\n"
    )


def test_step_returning_the_wrong_shape_names_plugin_and_step(tmp_path, tiny_shard, bad_steps_site):
    pipe = pipeline_file(tmp_path, "steps:\n  - step: wrong_shape\n")
    env = {"PYTHONPATH": str(bad_steps_site)}
    proc = curator_cli("run", str(pipe), "-i", str(tiny_shard), "-o", str(tmp_path / "ff"), "-q", "--fail-fast", env=env, check=False)
    assert proc.returncode == 1
    assert proc.stderr == ("Error: map step 'wrong_shape' (plugin 'badsteps') column 'score' has 2 values for 60 rows; fix the plugin (the step contract: docs/plugin-guide.md)\n")
    # without --fail-fast the rows are set aside with the reason, none lost
    out = curator_cli("run", str(pipe), "-i", str(tiny_shard), "-o", str(tmp_path / "q"), "-q", env=env).stdout
    assert "kept + rejected = 60 = input 60: ok" in out
    con = connect(tmp_path / "q")
    assert con.execute("SELECT DISTINCT reject_reason FROM rejected").fetchall() == [("error: StepError: map step 'wrong_shape' column 'score' has 2 values for 60 rows",)]


class _RaisesInRegister:
    @hookimpl
    def register_steps(self, register):
        raise ImportError("needs the frobnicate package")


def test_plugin_raising_in_register_steps_is_named(register_plugin):
    register_plugin(_RaisesInRegister(), "frob")
    with pytest.raises(PluginError) as err:
        plugins.get_registry()
    assert str(err.value).startswith("plugin 'frob' raised ImportError in register_steps: needs the frobnicate package (at test_plugins.py:")
    assert str(err.value).endswith("; fix the plugin, or run without it: --disable-plugin frob")


def test_trace_plugins_traces_every_hook_register_steps_included(tmp_path):
    proc = curator_cli("steps", "--json", env={"CURATOR_TRACE_PLUGINS": "1"})
    trace = proc.stderr
    assert "register_commands [hook]" in trace
    registered = {line.split("'")[1] for line in trace.splitlines() if line.startswith("curator: registered plugin")}
    called = {line.split("'")[1] for line in trace.splitlines() if "register: <register steps of plugin" in line}
    assert {"builtin", "datatrove"} <= registered and called == registered
    assert trace.count("finish register_steps --> [] [hook]") == len(registered)
    assert json.loads(proc.stdout)  # stdout stays clean JSON
    quiet = curator_cli("steps", "--json", env={"CURATOR_TRACE_PLUGINS": "0"})
    assert quiet.stderr == ""


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
    pct = {p["name"]: p for p in steps["percentile_threshold"]["parameters"]}
    assert pct["keep_top_percent"]["constraints"] == ["> 0", "<= 100"]


def test_steps_text_shows_descriptions_and_constraints():
    out = curator_cli("steps").stdout
    assert "percentile_threshold  (fit, plugin builtin)\n    fit: threshold = quantile of a column over the corpus" in out
    assert "    keep_top_percent: float | None (default None, > 0, <= 100): threshold keeps this top share\n" in out
    assert "    column: str (required): numeric column to take the quantile of\n" in out


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
