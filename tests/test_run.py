"""End to end on real data: runs, the funnel, SQL views, fit steps, caching, ids."""

from __future__ import annotations

import gzip
import json

import duckdb
import pyarrow.parquet as pq
import pytest
from conftest import DOLMA, curator_cli, pipeline_file, write_jsonl

from curator import plugins
from curator.config import load_pipeline
from curator.errors import ConfigError
from curator.runner import run_pipeline

DEMO_STEPS = """
name: t
steps:
  - step: text_stats
    name: stats
  - step: sql_filter
    name: min_length
    where: stats__words >= 50
    reason: too_few_words
  - step: gopher_repetition
  - step: gopher_quality
  - step: fineweb_quality
"""


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """The demo's filters over the whole dolma sample, through the real CLI."""
    plugins.reset()
    tmp = tmp_path_factory.mktemp("demo")
    pipe = pipeline_file(tmp, DEMO_STEPS)
    out = curator_cli("run", str(pipe), "--input", str(DOLMA), "--output", str(tmp / "run"), "-q")
    return tmp / "run", out.stdout


def sql(run, query):
    return duckdb.connect(str(run / "curator.duckdb"), read_only=True).execute(query).fetchall()


def test_funnel_balances_and_prints(demo_run):
    run, stdout = demo_run
    assert "kept + rejected = 697 = input 697: ok" in stdout
    stats = json.loads(curator_cli("stats", "--run", str(run), "--json").stdout)
    assert stats["input"] == 697 and stats["balanced"]
    assert stats["kept"] + stats["rejected"] == stats["input"]
    steps = {f["step"]: f for f in stats["funnel"]}
    assert steps["min_length"]["reasons"]["too_few_words"] > 50
    assert "gopher_enough_stop_words" in steps["gopher_quality"]["reasons"]
    # each step's input is the previous one's input minus what it rejected
    assert steps["gopher_repetition"]["input"] == steps["min_length"]["input"] - steps["min_length"]["rejected"]


def test_every_input_row_is_kept_or_rejected_exactly_once(demo_run):
    run, _ = demo_run
    source_ids = {json.loads(line)["id"] for line in gzip.open(DOLMA, "rt")}
    kept = {r[0] for r in sql(run, "SELECT id FROM kept")}
    rejected = [r[0] for r in sql(run, "SELECT id FROM rejected")]
    assert len(rejected) == len(set(rejected))
    assert kept.isdisjoint(rejected)
    assert kept | set(rejected) == source_ids


def test_rejected_rows_keep_their_columns_and_reasons(demo_run):
    run, _ = demo_run
    rows = sql(run, "SELECT reject_step, reject_reason, stats__words, text FROM rejected WHERE reject_step = 'min_length'")
    assert rows and all(r[1] == "too_few_words" and r[2] < 50 and r[3] is not None for r in rows)
    # the text is carried through untouched
    assert sql(run, "SELECT count(*) FROM documents WHERE text IS NULL")[0][0] == 0


def test_stage_views_allow_retuning_without_rerunning(demo_run):
    run, _ = demo_run
    stage = sql(run, "SELECT count(*) FROM stage_gopher_quality")[0][0]
    after = sql(run, "SELECT count(*) FROM stage_fineweb_quality")[0][0]
    gopher_rejects = sql(run, "SELECT count(*) FROM rejected WHERE reject_step = 'gopher_quality'")[0][0]
    assert stage - gopher_rejects == after
    # re-tune: what a stricter word minimum would have kept, answered in SQL
    stricter = sql(run, "SELECT count(*) FROM kept WHERE stats__words >= 300")[0][0]
    assert 0 < stricter < sql(run, "SELECT count(*) FROM kept")[0][0]


def test_sql_command_formats_and_is_read_only(demo_run):
    run, _ = demo_run
    table = curator_cli("sql", "SELECT reject_step, count(*) AS n FROM rejected GROUP BY 1 ORDER BY 1", "--run", str(run)).stdout
    assert "gopher_quality" in table and "rows)" in table
    as_json = json.loads(curator_cli("sql", "SELECT count(*) AS n FROM kept", "--run", str(run), "--format", "json").stdout)
    assert as_json[0]["n"] > 0
    csv_out = curator_cli("sql", "SELECT id FROM kept ORDER BY id LIMIT 2", "--run", str(run), "--format", "csv").stdout.splitlines()
    assert csv_out[0] == "id" and len(csv_out) == 3
    proc = curator_cli("sql", "CREATE TABLE x AS SELECT 1", "--run", str(run), check=False)
    assert proc.returncode == 1 and "read-only" in proc.stderr.lower()


def test_rerun_skips_finished_work(tmp_path, tiny_shard, registry):
    pipe = load_pipeline(pipeline_file(tmp_path, DEMO_STEPS), registry)
    first = run_pipeline(pipe, tmp_path / "run", inputs=[str(tiny_shard)], progress=False)
    marker = next((tmp_path / "run" / "pass-0" / "_done").glob("*.json"))
    mtime = marker.stat().st_mtime_ns
    second = run_pipeline(pipe, tmp_path / "run", inputs=[str(tiny_shard)], progress=False)
    assert marker.stat().st_mtime_ns == mtime
    assert first["kept"] == second["kept"]


def test_different_pipeline_in_same_output_is_refused(tmp_path, tiny_shard, registry):
    run_pipeline(load_pipeline(pipeline_file(tmp_path, "steps:\n  - step: noop\n"), registry), tmp_path / "run", inputs=[str(tiny_shard)], progress=False)
    other = load_pipeline(pipeline_file(tmp_path, "steps:\n  - step: text_stats\n", "b.yaml"), registry)
    with pytest.raises(ConfigError, match="different pipeline"):
        run_pipeline(other, tmp_path / "run", inputs=[str(tiny_shard)], progress=False)
    summary = run_pipeline(other, tmp_path / "run", inputs=[str(tiny_shard)], progress=False, overwrite=True)
    assert summary["kept"] == 60


def test_fit_step_threshold_then_filter_and_cache(tmp_path, dolma_rows, registry):
    shard = tmp_path / "in.jsonl"
    write_jsonl(shard, dolma_rows[:200])
    text = """
steps:
  - step: text_stats
  - step: percentile_threshold
    name: cut
    column: text_stats__words
    keep_top_percent: 25
  - step: range_filter
    name: top
    column: text_stats__words
    min: ${cut.threshold}
"""
    pipe = load_pipeline(pipeline_file(tmp_path, text), registry)
    summary = run_pipeline(pipe, tmp_path / "run", inputs=[str(shard)], progress=False)
    assert summary["balanced"] and summary["input"] == 200
    assert 45 <= summary["kept"] <= 55  # the top quarter by words
    con = duckdb.connect(str(tmp_path / "run" / "curator.duckdb"), read_only=True)
    threshold = json.loads((tmp_path / "run" / "artifacts" / "cut" / "result.json").read_text())["result"]["threshold"]
    expected = con.execute("SELECT quantile_cont(text_stats__words, 0.75) FROM documents").fetchone()[0]
    assert threshold == pytest.approx(expected)
    assert con.execute(f"SELECT min(text_stats__words) >= {threshold} FROM kept").fetchone()[0]
    # the fit result is cached: a rerun does not recompute it
    result_file = tmp_path / "run" / "artifacts" / "cut" / "result.json"
    before = result_file.stat().st_mtime_ns
    run_pipeline(pipe, tmp_path / "run", inputs=[str(shard)], progress=False)
    assert result_file.stat().st_mtime_ns == before


def test_column_mapping_and_generated_ids_are_stable(tmp_path, dolma_rows, registry):
    rows = [{"content": r["text"], "url": r["url"]} for r in dolma_rows[:30]]
    write_jsonl(tmp_path / "data" / "a.jsonl", rows)
    text = "input:\n  text_column: content\nsteps:\n  - step: text_stats\n"
    pipe = load_pipeline(pipeline_file(tmp_path, text), registry)
    run_pipeline(pipe, tmp_path / "r1", inputs=[str(tmp_path / "data" / "*.jsonl")], progress=False)
    run_pipeline(pipe, tmp_path / "r2", inputs=[str(tmp_path / "data" / "*.jsonl")], progress=False)
    t1 = pq.read_table(tmp_path / "r1" / "pass-0" / "kept" / "part-00000.parquet")
    t2 = pq.read_table(tmp_path / "r2" / "pass-0" / "kept" / "part-00000.parquet")
    assert t1.column("id").to_pylist() == t2.column("id").to_pylist()
    assert t1.column("id")[0].as_py() == "a.jsonl:0"
    assert t1.column("text").to_pylist() == [r["content"] for r in rows]
    assert "url" in t1.column_names and "content" not in t1.column_names


def test_parquet_and_zstd_jsonl_inputs(tmp_path, dolma_rows, registry):
    import zstandard

    raw = "".join(json.dumps(r) + "\n" for r in dolma_rows[:40]).encode()
    (tmp_path / "a.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(raw))
    pipe = load_pipeline(pipeline_file(tmp_path, "steps:\n  - step: noop\n"), registry)
    summary = run_pipeline(pipe, tmp_path / "run", inputs=[str(tmp_path / "a.jsonl.zst")], progress=False)
    assert summary["kept"] == 40


def test_local_workers_give_the_same_rows(tmp_path, sharded_input, registry):
    pipe = load_pipeline(pipeline_file(tmp_path, DEMO_STEPS), registry)
    one = run_pipeline(pipe, tmp_path / "one", inputs=[str(sharded_input)], progress=False, workers=1)
    two = run_pipeline(pipe, tmp_path / "two", inputs=[str(sharded_input)], progress=False, workers=2)
    assert one["kept"] == two["kept"] and one["funnel"] == [dict(f, seconds=g["seconds"]) for f, g in zip(two["funnel"], one["funnel"])]
    q = "SELECT id, reject_step, reject_reason FROM documents ORDER BY id"
    assert sql(tmp_path / "one", q) == sql(tmp_path / "two", q)
