"""Validation catches at `curator validate` time (and at the start of a run) what it can."""

from __future__ import annotations

import json
import os
import time

import pytest
from click.testing import CliRunner
from conftest import pipeline_file, write_jsonl

from curator.cli import cli
from curator.config import load_pipeline
from curator.errors import ConfigError
from curator.passes import PassOptions, marker_path, process_unit, shard_done
from curator.runner import run_pipeline
from curator.shards import make_units


def invoke(*args):
    result = CliRunner().invoke(cli, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


@pytest.mark.parametrize("size", [-5, 0])
def test_batch_size_must_be_positive(tmp_path, registry, size):
    path = pipeline_file(tmp_path, f"batch_size: {size}\nsteps:\n  - step: text_stats\n")
    with pytest.raises(ConfigError, match=r"pipeline.yaml: field 'batch_size': Input should be greater than 0"):
        load_pipeline(path, registry)
    result = invoke("validate", str(path))
    assert result.exit_code == 1 and "batch_size" in result.output and "Traceback" not in result.output


def test_batch_size_given_on_the_command_line_is_checked(tmp_path, tiny_shard):
    path = pipeline_file(tmp_path, "steps:\n  - step: text_stats\n")
    result = invoke("run", str(path), "-i", str(tiny_shard), "-o", str(tmp_path / "run"), "--batch-size", "-5", "-q")
    assert result.exit_code == 1 and "field 'batch_size': must be a positive number of rows, got -5" in result.output
    assert not (tmp_path / "run" / "pass-0" / "kept").exists()  # nothing ran


SQL_CASES = [
    ("length(text >= 10", "Parser Error"),
    ("length(txet) > 10", 'Referenced column "txet" not found'),
    ("url LIKE '%.de%' AND missing_column > 3", 'Referenced column "missing_column" not found'),
]


@pytest.mark.parametrize(("where", "error"), SQL_CASES)
def test_sql_filter_with_broken_sql_fails_validate(tmp_path, tiny_shard, where, error):
    path = pipeline_file(tmp_path, f'steps:\n  - step: text_stats\n  - step: sql_filter\n    where: "{where}"\n')
    result = invoke("validate", str(path), "--input", str(tiny_shard))
    assert result.exit_code == 1, result.output
    assert f"{path}:3: step 'sql_filter' (sql_filter): " in result.output and error in result.output
    assert "columns of" in result.output and "text_stats__chars" in result.output  # the columns it could have used


def test_validate_passes_sql_over_real_and_added_columns(tmp_path, tiny_shard, dolma_rows):
    write_jsonl(tmp_path / "in.jsonl", [{"id": r["id"], "text": r["text"], "url": r["url"]} for r in dolma_rows[:5]])
    where = "text_stats__words > 50 AND url LIKE '%.de%'"
    path = pipeline_file(tmp_path, f'input:\n  path: {tmp_path / "in.jsonl"}\nsteps:\n  - step: text_stats\n  - step: sql_filter\n    where: "{where}"\n')
    result = invoke("validate", str(path))
    assert result.exit_code == 0, result.output
    assert "ok, 2 steps" in result.output and "not checked" not in result.output


@pytest.mark.parametrize(("where", "error"), SQL_CASES)
def test_sql_filter_with_broken_sql_stops_the_run_instead_of_quarantining_every_row(tmp_path, registry, tiny_shard, where, error):
    pipe = load_pipeline(pipeline_file(tmp_path, f'steps:\n  - step: sql_filter\n    where: "{where}"\n'), registry)
    with pytest.raises(ConfigError, match="step 'sql_filter' \\(sql_filter\\) fails on any batch, even an empty one") as info:
        run_pipeline(pipe, tmp_path / "run", inputs=[str(tiny_shard)], progress=False)
    assert error in str(info.value)
    assert not list((tmp_path / "run" / "pass-0").glob("*/*.parquet"))  # no shard written, no row quarantined


def test_a_step_failing_on_some_rows_is_still_quarantined_per_row(tmp_path, registry, tiny_shard):
    # a data-dependent error (a cast that fails on some values) is about rows: quarantined, the run goes on
    steps = '  - step: sql_filter\n    where: "CASE WHEN length(text) > 3000 THEN CAST(text AS INTEGER) > 0 ELSE true END"\n'
    pipe = load_pipeline(pipeline_file(tmp_path, f"steps:\n{steps}"), registry)
    summary = run_pipeline(pipe, tmp_path / "run", inputs=[str(tiny_shard)], progress=False)
    assert summary["balanced"] and summary["input"] == 60
    assert summary["funnel"][0]["reasons"].get("error", 0) > 0


def test_marker_fingerprints_its_input_and_a_changed_input_is_not_done(tmp_path, registry, dolma_rows):
    data = write_jsonl(tmp_path / "in.jsonl", [{"id": r["id"], "text": r["text"]} for r in dolma_rows[:10]])
    [unit] = make_units([str(data)])
    pass_dir = tmp_path / "pass-0"
    from curator.config import InputSpec

    stats = process_unit(unit, [], pass_dir, PassOptions(InputSpec()))
    assert stats["fingerprint"] == {"size": data.stat().st_size, "mtime_ns": data.stat().st_mtime_ns}
    assert json.loads(marker_path(pass_dir, unit).read_text())["fingerprint"] == stats["fingerprint"]
    assert shard_done(pass_dir, unit)
    write_jsonl(data, [{"id": r["id"], "text": r["text"]} for r in dolma_rows[:12]])  # the file changes
    assert not shard_done(pass_dir, unit)
    stats = process_unit(unit, [], pass_dir, PassOptions(InputSpec()))
    assert stats["input"] == 12 and shard_done(pass_dir, unit)
    later = time.time_ns() + 5_000_000_000
    os.utime(data, ns=(later, later))  # same size, touched
    assert not shard_done(pass_dir, unit)


def test_pass_options_refuse_a_batch_size_below_one(tmp_path, tiny_shard):
    from curator.config import InputSpec
    from curator.shards import InputReader

    for size in (0, -5):
        with pytest.raises(ConfigError, match="batch_size must be a positive number of rows"):
            InputReader(InputSpec(), size, "quarantine")
