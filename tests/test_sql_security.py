"""`curator sql` reads and only reads: every way found to write or to read outside the run is refused.

One real run (in a directory whose name holds both quote characters) is
attacked with each statement class; afterwards every file of the run has the
same sha256 and nothing was written next to it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner
from conftest import curator_cli, pipeline_file

from curator import catalog, plugins
from curator.cli import cli
from curator.config import load_pipeline
from curator.runner import run_pipeline

PIPELINE = """
steps:
  - step: text_stats
    name: stats
  - step: percentile_threshold
    name: cut
    column: stats__words
    keep_top_percent: 50
  - step: range_filter
    name: long_enough
    column: stats__words
    min: ${cut.threshold}
"""

SECRET = "curator-test-secret-4242"


@pytest.fixture(scope="module")
def attacked_run(tmp_path_factory, dolma_rows):
    import pyarrow as pa
    import pyarrow.parquet as pq

    base = tmp_path_factory.mktemp("sqlsec")
    shard = base / "in" / "tiny.parquet"
    shard.parent.mkdir()
    pq.write_table(pa.Table.from_pylist(dolma_rows[:80]), shard)
    plugins.reset()
    pipe = load_pipeline(pipeline_file(base, PIPELINE), plugins.get_registry())
    run = base / 'ru\'n "x"'  # both quote characters: paths must be quoted, not pasted
    summary = run_pipeline(pipe, run, inputs=[str(shard)], progress=False)
    assert summary["balanced"] and 0 < summary["kept"] < 80
    (base / "outside.txt").write_text("not for curator sql\n")
    return run, shard


def _checksums(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def _sql(run: Path, query: str):
    return CliRunner().invoke(cli, ["sql", query, "--run", str(run)], catch_exceptions=False)


def q(path: Path | str) -> str:
    return catalog.sql_string(path)


def attacks(run: Path, shard: Path) -> list[tuple[str, str]]:
    kept = sorted((run / "pass-0" / "kept").glob("*.parquet"))[0]
    return [
        ("COPY over a kept shard", f"COPY (SELECT 'x' AS id, 'forged' AS text) TO {q(kept)} (FORMAT parquet)"),
        ("COPY a forged shard into kept/", f"COPY (SELECT * FROM kept LIMIT 1) TO {q(run / 'pass-0' / 'kept' / 'forged.parquet')} (FORMAT parquet)"),
        ("COPY out of the run", f"COPY kept TO {q(run.parent / 'leak.csv')}"),
        ("COPY FROM a file", f"COPY kept FROM {q('/etc/passwd')}"),
        ("ATTACH a new file", f"ATTACH {q(run / 'evil.duckdb')} AS evil"),
        ("ATTACH the catalog read-write", f"ATTACH {q(run / 'curator.duckdb')} AS rw"),
        ("DETACH", "DETACH curator"),
        ("EXPORT DATABASE", f"EXPORT DATABASE {q(run / 'export')}"),
        ("IMPORT DATABASE", f"IMPORT DATABASE {q(run)}"),
        ("write hidden after SELECT 1;", f"SELECT 1; COPY kept TO {q(run / 'x.parquet')} (FORMAT parquet)"),
        ("write hidden after a comment", f"SELECT 1 /* ; */; COPY kept TO {q(run / 'y.csv')}"),
        ("read_text /etc/passwd", "SELECT * FROM read_text('/etc/passwd')"),
        ("read_csv /proc/self/environ", "SELECT * FROM read_csv('/proc/self/environ')"),
        ("read_blob /proc/self/environ", "SELECT content FROM read_blob('/proc/self/environ')"),
        ("glob /etc/*", "SELECT * FROM glob('/etc/*')"),
        ("read_parquet of an input outside the run", f"SELECT count(*) FROM read_parquet({q(shard)})"),
        ("read_text next to the run via ..", f"SELECT * FROM read_text({q(str(run) + '/../outside.txt')})"),
        ("read_json outside", "SELECT * FROM read_json_auto('/etc/os-release')"),
        ("sniff_csv outside", "SELECT * FROM sniff_csv('/etc/passwd')"),
        ("FROM-first read_text", "FROM read_text('/etc/hostname')"),
        ("DESCRIBE of a file read", "DESCRIBE SELECT * FROM read_text('/etc/passwd')"),
        ("SUMMARIZE of a file read", "SUMMARIZE SELECT * FROM read_csv('/etc/passwd')"),
        ("EXPLAIN ANALYZE of a file read", "EXPLAIN ANALYZE SELECT * FROM read_text('/etc/passwd')"),
        ("EXPLAIN ANALYZE COPY", f"EXPLAIN ANALYZE COPY kept TO {q(run / 'z.csv')}"),
        ("query() of a write", f"SELECT * FROM query('COPY kept TO {q(run / 'w.csv')}')"),
        ("getenv", "SELECT getenv('CURATOR_TEST_SECRET')"),
        ("INSTALL", "INSTALL httpfs"),
        ("LOAD", "LOAD httpfs"),
        ("FORCE INSTALL from a path", f"FORCE INSTALL {q('/tmp/evil.duckdb_extension')}"),
        ("UPDATE EXTENSIONS", "UPDATE EXTENSIONS"),
        ("SET enable_external_access=true", "SET enable_external_access = true"),
        ("RESET enable_external_access", "RESET enable_external_access"),
        ("SET allowed_directories", "SET allowed_directories = ['/']"),
        ("SET lock_configuration=false", "SET lock_configuration = false"),
        ("SET VARIABLE", "SET VARIABLE x = 1"),
        ("PRAGMA that sets", "PRAGMA threads = 1"),
        ("PRAGMA enable_profiling to a file", "PRAGMA enable_profiling"),
        ("CREATE TABLE", "CREATE TABLE t AS SELECT 1"),
        ("CREATE TEMP TABLE", "CREATE TEMP TABLE t AS SELECT 1"),
        ("CREATE OR REPLACE VIEW kept", "CREATE OR REPLACE VIEW kept AS SELECT 1"),
        ("CREATE MACRO", "CREATE MACRO m(a) AS a"),
        ("CREATE SECRET", "CREATE SECRET s (TYPE s3, KEY_ID 'a', SECRET 'b')"),
        ("INSERT", "INSERT INTO kept SELECT * FROM kept"),
        ("UPDATE", "UPDATE kept SET text = 'x'"),
        ("DELETE", "DELETE FROM kept"),
        ("DROP VIEW", "DROP VIEW kept"),
        ("ALTER VIEW", "ALTER VIEW kept RENAME TO k2"),
        ("CALL", "CALL checkpoint()"),
        ("CHECKPOINT", "CHECKPOINT"),
        ("VACUUM", "VACUUM"),
        ("USE", "USE memory"),
        ("BEGIN", "BEGIN TRANSACTION"),
    ]


def test_every_write_or_escape_is_refused_and_the_run_is_unchanged(attacked_run, monkeypatch):
    run, shard = attacked_run
    monkeypatch.setenv("CURATOR_TEST_SECRET", SECRET)
    before = _checksums(run)
    next_to_run = sorted(p.name for p in run.parent.iterdir())
    cases = attacks(run, shard)
    accepted = []
    for label, query in cases:
        result = _sql(run, query)
        if result.exit_code == 0:
            accepted.append(f"{label}: {query}\n{result.output[:300]}")
            continue
        assert result.output.startswith("Error: "), f"{label}: not a clean error: {result.output[:300]}"
        assert "Traceback" not in result.output
        assert "root:" not in result.output and SECRET not in result.output, f"{label} leaked file content"
    assert not accepted, "accepted:\n" + "\n".join(accepted)
    assert _checksums(run) == before
    assert sorted(p.name for p in run.parent.iterdir()) == next_to_run
    assert len(cases) >= 50


def test_refusals_say_why(attacked_run):
    run, _ = attacked_run
    assert "one statement per call" in _sql(run, "SELECT 1; SELECT 2").output
    assert "refused COPY" in _sql(run, f"COPY kept TO {q(run / 'a.csv')}").output
    assert "refused ATTACH" in _sql(run, f"ATTACH {q(run / 'b.duckdb')}").output
    denied = _sql(run, "SELECT * FROM read_text('/etc/passwd')").output
    assert "Permission Error" in denied or "disabled" in denied.lower(), denied


def test_ordinary_queries_still_work(attacked_run):
    run, _ = attacked_run
    kept = int(_sql(run, "SELECT count(*) AS n FROM kept").output.split("\n")[2])
    assert kept > 0
    grouped = _sql(run, "SELECT reject_step, count(*) AS n FROM rejected GROUP BY ALL ORDER BY 1")
    assert grouped.exit_code == 0 and "long_enough" in grouped.output
    total = _sql(run, "SELECT count(*) FROM documents").output.split("\n")[2]
    assert int(total) == 80
    for query in [
        "DESCRIBE kept",
        "SHOW TABLES",
        "SUMMARIZE kept",
        "EXPLAIN SELECT count(*) FROM kept",
        "PRAGMA table_info('kept')",
        "FROM stage_long_enough LIMIT 2",
        "SELECT * FROM quarantine",
        "SELECT 1 -- ; COPY kept TO 'x'",
        "SELECT ';' AS s",
        "WITH t AS (SELECT stats__words AS w FROM kept) SELECT max(w) FROM t",
    ]:
        result = _sql(run, query)
        assert result.exit_code == 0, f"{query}: {result.output}"
    assert "stats__words" in _sql(run, "DESCRIBE kept").output
    # The run's own files may be read by path; that is what the views do.
    own = sorted((run / "pass-0" / "kept").glob("*.parquet"))[0]
    assert _sql(run, f"SELECT count(*) FROM read_parquet({q(own)})").exit_code == 0


def test_catalog_connections_cannot_read_outside_or_unlock(attacked_run):
    run, shard = attacked_run
    for connection in (catalog.open_readonly(run), catalog.connect(run)):
        with pytest.raises(duckdb.Error):
            connection.execute("SELECT * FROM read_text('/etc/passwd')").fetchall()
        with pytest.raises(duckdb.Error):
            connection.execute(f"SELECT count(*) FROM read_parquet({q(shard)})").fetchall()
        with pytest.raises(duckdb.Error):
            connection.execute("SET enable_external_access = true")
        assert connection.execute("SELECT count(*) FROM documents").fetchone()[0] == 80
        connection.close()


def test_real_cli_subprocess_refuses_and_reads(attacked_run):
    run, _ = attacked_run
    proc = curator_cli("sql", f"SELECT 1; COPY kept TO {q(run / 'p.csv')}", "--run", str(run), check=False)
    assert proc.returncode == 1 and proc.stderr.startswith("Error: ") and "Traceback" not in proc.stderr
    proc = curator_cli("sql", "SELECT * FROM read_csv('/proc/self/environ')", "--run", str(run), check=False, env={"CURATOR_TEST_SECRET": SECRET})
    assert proc.returncode == 1 and SECRET not in proc.stdout + proc.stderr
    assert "(1 row)" in curator_cli("sql", "SELECT count(*) FROM kept", "--run", str(run)).stdout
    assert not (run / "p.csv").exists()


def test_quotes_in_the_run_directory_work_end_to_end(attacked_run, tmp_path):
    """The fit step's corpus view, the catalog file and `curator sql` all take ru'n "x"."""
    run, shard = attacked_run
    assert "'" in run.name and '"' in run.name
    assert (run / "artifacts" / "cut" / "result.json").exists()
    con = duckdb.connect(str(run / catalog.CATALOG_FILE), read_only=True)
    assert con.execute("SELECT count(*) FROM documents").fetchone()[0] == 80
    con.close()
    # An injection attempt in the name is only a name.
    evil = tmp_path / "x'); COPY (SELECT 1) TO '/tmp/pwned.csv'; --"
    plugins.reset()
    pipe = load_pipeline(pipeline_file(tmp_path, PIPELINE), plugins.get_registry())
    summary = run_pipeline(pipe, evil, inputs=[str(shard)], progress=False)
    assert summary["balanced"] and summary["input"] == 80
    assert not os.path.exists("/tmp/pwned.csv")
