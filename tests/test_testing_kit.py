"""curator.testing, the pytest plugin for plugin authors: fixtures, shards, run_pipeline over a real run."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from curator import FilterResult, FilterStep, FitContext, FitStep, MapStep, hookimpl, plugins
from curator.errors import PluginError, StepError
from curator.testing import RunResult, run_pipeline

pytest_plugins = ["pytester"]


class Shout(MapStep):
    name = "kit_shout"

    def process(self, batch):
        return {"upper": [t.upper() for t in batch.column("text").to_pylist()]}


class HasX(FilterStep):
    name = "kit_has_x"

    def filter(self, batch):
        texts = batch.column("text").to_pylist()
        return FilterResult([("x" in t) for t in texts], ["no_x"] * len(texts), {"length": [len(t) for t in texts]})


class Longest(FitStep):
    name = "kit_longest"

    def fit(self, ctx: FitContext):
        return {"chars": ctx.execute("SELECT max(length(text)) FROM corpus").fetchall()[0][0]}


ROWS = [{"id": "1", "text": "box", "lang": "en"}, {"id": "2", "text": "cat", "lang": "en"}, {"id": "3", "text": "xylophone", "lang": "en"}]


def test_run_pipeline_returns_kept_and_rejected_from_a_real_run(curator_plugins, tmp_path):
    curator_plugins.register_steps(Shout, HasX)
    result = run_pipeline(["kit_shout", ("kit_has_x", {})], ROWS, run_dir=tmp_path / "run")
    kept, rejected = result
    assert isinstance(result, RunResult) and result.run_dir == tmp_path / "run"
    assert [(r["id"], r["kit_shout__upper"], r["kit_has_x__length"], r["lang"]) for r in kept] == [("1", "BOX", 3, "en"), ("3", "XYLOPHONE", 9, "en")]
    assert [(r["id"], r["reject_step"], r["reject_reason"]) for r in rejected] == [("2", "kit_has_x", "no_x")]
    assert result.stats["input"] == 3 == len(kept) + len(rejected)
    assert (tmp_path / "run" / "curator.duckdb").is_file()  # a real run directory, queryable with `curator sql`


def test_step_classes_need_no_registration_and_fit_results_resolve(tmp_path):
    steps = [Longest, {"step": "sql_filter", "name": "longest_only", "where": "length(text) >= ${kit_longest.chars}"}]
    kept, rejected = run_pipeline(steps, ROWS, run_dir=tmp_path / "run")
    assert [r["id"] for r in kept] == ["3"] and {r["reject_step"] for r in rejected} == {"longest_only"}
    assert "kit_longest" not in plugins.get_registry()  # the global registry was not touched


def test_a_class_clashing_with_a_registered_name_is_refused(tmp_path):
    class FakeNoop(MapStep):
        name = "noop"

        def process(self, batch):
            return {}

    with pytest.raises(PluginError, match="'noop' is registered twice"):
        run_pipeline([FakeNoop], ROWS, run_dir=tmp_path / "run")


def test_a_broken_step_fails_the_test_by_default(tmp_path):
    class Broken(MapStep):
        name = "kit_broken"

        def process(self, batch):
            return {"x": [1]}

    with pytest.raises(StepError, match="'kit_broken'.*1 values for 3 rows"):
        run_pipeline([Broken], ROWS, run_dir=tmp_path / "a")
    kept, rejected = run_pipeline([Broken], ROWS, run_dir=tmp_path / "b", fail_fast=False)
    assert kept == [] and [r["reject_reason"].startswith("error: StepError") for r in rejected] == [True] * 3


def test_curator_plugins_fixture_is_fresh_and_cleans_up(curator_plugins, curator_registry):
    assert "noop" in curator_registry and "kit_shout" not in curator_registry
    name = curator_plugins.register_steps(Shout)
    assert curator_plugins.registry.lookup("kit_shout").plugin == name

    class Plugin:
        @hookimpl
        def register_steps(self, register):
            register(HasX)

    curator_plugins.register(Plugin(), "kit-plugin")
    assert curator_plugins.registry.lookup("kit_has_x").plugin == "kit-plugin"
    assert curator_plugins.pm.has_plugin("kit-plugin")


def test_registrations_are_gone_in_the_next_test():
    assert "kit_shout" not in plugins.get_registry() and "kit_has_x" not in plugins.get_registry()


def test_make_shard_writes_real_parquet(make_shard):
    path = make_shard(ROWS, "a.parquet")
    assert pq.read_table(path).to_pylist() == ROWS
    with pytest.raises(ValueError, match="rows need text"):
        make_shard([{"id": "1"}])


def test_the_plugin_is_registered_with_pytest_through_its_entry_point(pytester):
    """A plugin's own test suite gets the fixtures with no conftest (pytest11 entry point)."""
    pytester.makepyfile(
        """
        def test_fixtures(curator_plugins, curator_registry, make_shard, curator_run):
            kept, rejected = curator_run(["text_stats"], [{"id": "a", "text": "two words"}])
            assert kept[0]["text_stats__words"] == 2 and rejected == []
        """
    )
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
