"""The worked example in docs/example-plugin: pip-installed, listed, run, its hooks used."""

from __future__ import annotations

import json

import duckdb
from conftest import DOLMA, curator_cli, pipeline_file

from curator import plugins

PIPELINE = """
steps:
  - step: banned_words
    words: [casino, viagra, porn]
"""


def test_installed_plugin_is_listed(example_plugin):
    rows = {r["name"]: r for r in json.loads(curator_cli("plugins", "--json").stdout)}
    assert rows["example"]["distribution"] == "curator-example-plugin"
    assert rows["example"]["hooks"] == ["prepare_duckdb", "register_commands", "register_steps"]
    steps = {r["name"]: r for r in json.loads(curator_cli("steps", "--json").stdout)}
    assert steps["banned_words"]["plugin"] == "example"
    assert [p["name"] for p in steps["banned_words"]["parameters"]] == ["words", "max_hits"]


def test_plugin_step_runs_in_a_pipeline_with_two_workers(example_plugin, tmp_path, sharded_input):
    pipe = pipeline_file(tmp_path, PIPELINE)
    out = curator_cli("run", str(pipe), "-i", str(sharded_input), "-o", str(tmp_path / "run"), "-w", "2", "-q").stdout
    assert "banned_words" in out
    con = duckdb.connect(str(tmp_path / "run" / "curator.duckdb"), read_only=True)
    reasons = dict(con.execute("SELECT reject_reason, count(*) FROM rejected GROUP BY 1").fetchall())
    assert reasons and all(r.startswith("banned_word:") for r in reasons)
    texts = [t for (t,) in con.execute("SELECT text FROM rejected").fetchall()]
    assert all(any(w in t.lower() for w in ("casino", "viagra", "porn")) for t in texts)


def test_plugin_command_and_sql_macro(example_plugin, tmp_path):
    out = curator_cli("example-banned", "Win at the CASINO today", "--word", "casino").stdout
    assert "(False, 'banned_word:casino')" in out
    pipe = pipeline_file(tmp_path, "steps:\n  - step: noop\n")
    curator_cli("run", str(pipe), "-i", str(DOLMA), "-o", str(tmp_path / "run"), "-q")
    result = curator_cli("sql", "SELECT word_count('one two  three') AS n", "--run", str(tmp_path / "run"), "--format", "json").stdout
    assert json.loads(result) == [{"n": 3}]


def test_plugin_is_gone_without_the_package():
    assert "banned_words" not in plugins.get_registry()
