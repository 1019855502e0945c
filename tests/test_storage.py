"""Where a run lives: relocatable catalogs, SQL-friendly Parquet, bounded output shards."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import duckdb
from conftest import curator_cli, pipeline_file

PIPELINE = """
steps:
  - step: text_stats
  - step: sql_filter
    where: text_stats__words >= 100
    reason: short
"""
COUNTS = "SELECT reject_reason, count(*) AS n FROM documents GROUP BY 1 ORDER BY 1"


def _sql_json(run, query, cwd):
    return json.loads(curator_cli("sql", query, "--run", str(run), "--format", "json", cwd=cwd).stdout)


def _plain_client(database, query, cwd):
    """A DuckDB client that knows nothing of curator, in its own process."""
    code = f"import duckdb, json; print(json.dumps(duckdb.connect({str(database)!r}, read_only=True).execute({query!r}).fetchall()))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_a_moved_run_opens_with_curator_sql_and_a_plain_duckdb_client(tmp_path, sharded_input):
    pipe = pipeline_file(tmp_path, PIPELINE)
    original = tmp_path / "original"
    curator_cli("run", str(pipe), "-i", str(sharded_input), "-o", str(original), "-q")
    expected = _sql_json(original, COUNTS, tmp_path)
    assert sum(r["n"] for r in expected) == 697

    moved = tmp_path / "elsewhere" / "moved"
    moved.parent.mkdir()
    shutil.move(str(original), str(moved))
    assert _sql_json(moved, COUNTS, cwd=tmp_path / "elsewhere") == expected
    # curator rebuilt the catalog file for its new place: any DuckDB client, any working directory
    rows = _plain_client(moved / "curator.duckdb", COUNTS, cwd="/")
    assert [{"reject_reason": r, "n": n} for r, n in rows] == expected
    assert curator_cli("stats", "--run", str(moved)).stdout.count("= input 697: ok") == 1


def test_a_copy_reads_its_own_files_not_the_originals(tmp_path, sharded_input):
    pipe = pipeline_file(tmp_path, PIPELINE)
    original = tmp_path / "a"
    curator_cli("run", str(pipe), "-i", str(sharded_input), "-o", str(original), "-q")
    kept = _sql_json(original, "SELECT count(*) AS n FROM kept", tmp_path)[0]["n"]
    copy = tmp_path / "b"
    shutil.copytree(original, copy)
    # change the original after copying: the copy must not see it
    sorted((original / "pass-0" / "kept").glob("*.parquet"))[0].unlink()
    assert _sql_json(original, "SELECT count(*) AS n FROM kept", tmp_path)[0]["n"] < kept
    assert _sql_json(copy, "SELECT count(*) AS n FROM kept", tmp_path) == [{"n": kept}]
    assert _plain_client(copy / "curator.duckdb", "SELECT count(*) FROM kept", cwd=tmp_path) == [[kept]]


def test_a_read_only_copy_is_queried_through_temporary_views(tmp_path, sharded_input, monkeypatch):
    from curator import catalog

    pipe = pipeline_file(tmp_path, PIPELINE)
    original = tmp_path / "a"
    curator_cli("run", str(pipe), "-i", str(sharded_input), "-o", str(original), "-q")
    expected = _sql_json(original, COUNTS, tmp_path)
    copy = tmp_path / "ro"
    shutil.copytree(original, copy)
    shutil.rmtree(original)
    before = (copy / "curator.duckdb").read_bytes()
    # a run on read-only storage (tests run as root, which ignores file modes)
    monkeypatch.setattr(catalog, "_can_write", lambda run_dir: False)
    connection = catalog.open_readonly(copy)
    try:
        rows = connection.execute(COUNTS).fetchall()
    finally:
        connection.close()
    assert [{"reject_reason": r, "n": n} for r, n in rows] == expected
    assert (copy / "curator.duckdb").read_bytes() == before


# --------------------------------------------------------------------------- Parquet for SQL

TWO_PASSES = """
steps:
  - step: text_stats
  - step: percentile_threshold
    name: cut
    column: text_stats__words
    keep_top_percent: 50
  - step: range_filter
    name: top
    column: text_stats__words
    min: ${cut.threshold}
"""


def _documents(run):
    con = duckdb.connect(str(run / "curator.duckdb"), read_only=True)
    try:
        return con.execute("SELECT id, reject_step, reject_reason, text_stats__words FROM documents ORDER BY id").fetchall()
    finally:
        con.close()


def test_output_shards_have_sql_sized_row_groups_and_a_bounded_size(tmp_path, registry):
    import pyarrow.parquet as pq
    from conftest import DOLMA

    from curator.config import load_pipeline
    from curator.runner import run_pipeline

    pipe = load_pipeline(pipeline_file(tmp_path, TWO_PASSES), registry)
    reference = run_pipeline(pipe, tmp_path / "reference", inputs=[str(DOLMA)], progress=False)
    pipe.options.row_group_rows, pipe.options.max_shard_rows = 50, 120
    small = run_pipeline(pipe, tmp_path / "small", inputs=[str(DOLMA)], progress=False, workers=2)
    assert small["balanced"] and small["input"] == reference["input"] == 697
    assert _documents(tmp_path / "small") == _documents(tmp_path / "reference")

    pass0 = sorted(p.name for p in (tmp_path / "small" / "pass-0" / "kept").glob("*.parquet"))
    assert pass0 == ["part-00000.c1.parquet", "part-00000.c2.parquet", "part-00000.c3.parquet", "part-00000.c4.parquet", "part-00000.c5.parquet", "part-00000.parquet"]
    # pass 1 reads each of them as a unit of its own
    assert len(list((tmp_path / "small" / "pass-1" / "_done").glob("*.json"))) == 6
    for path in (tmp_path / "small").glob("pass-*/*/*.parquet"):
        meta = pq.ParquetFile(path).metadata
        assert meta.num_rows <= 120
        assert all(meta.row_group(g).num_rows <= 50 for g in range(meta.num_row_groups))
        assert meta.row_group(0).column(0).compression == "ZSTD"
    first = pq.ParquetFile(tmp_path / "small" / "pass-0" / "kept" / "part-00000.parquet").metadata
    assert first.num_rows == 120 and [first.row_group(g).num_rows for g in range(first.num_row_groups)] == [50, 50, 20]
    big = pq.ParquetFile(tmp_path / "reference" / "pass-0" / "kept" / "part-00000.parquet").metadata
    assert big.num_row_groups == 1  # 697 rows: one group, not one per batch


def test_a_redone_unit_leaves_no_chunk_of_its_earlier_attempt(tmp_path, registry):
    from conftest import DOLMA

    from curator.config import load_pipeline
    from curator.runner import run_pipeline

    pipe = load_pipeline(pipeline_file(tmp_path, "steps:\n  - step: text_stats\n"), registry)
    pipe.options.max_shard_rows = 100
    run_pipeline(pipe, tmp_path / "run", inputs=[str(DOLMA)], progress=False)
    assert len(list((tmp_path / "run" / "pass-0" / "kept").glob("*.parquet"))) == 7
    (tmp_path / "run" / "pass-0" / "_done" / "part-00000.json").unlink()  # as if killed before its marker
    pipe.options.max_shard_rows = 300
    summary = run_pipeline(pipe, tmp_path / "run", inputs=[str(DOLMA)], progress=False)
    assert sorted(p.name for p in (tmp_path / "run" / "pass-0" / "kept").glob("*.parquet")) == ["part-00000.c1.parquet", "part-00000.c2.parquet", "part-00000.parquet"]
    assert summary["kept"] == 697 and _sql_count(tmp_path / "run") == 697


def _sql_count(run):
    con = duckdb.connect(str(run / "curator.duckdb"), read_only=True)
    try:
        return con.execute("SELECT count(*) FROM kept").fetchone()[0]
    finally:
        con.close()
