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
