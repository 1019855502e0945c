"""One big file, many workers: files split into work units give exactly the rows of whole files."""

from __future__ import annotations

import gzip
import json

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from conftest import pipeline_file

from curator.config import load_pipeline
from curator.runner import run_pipeline
from curator.shards import make_units

PIPELINE = """
steps:
  - step: text_stats
  - step: sql_filter
    where: text_stats__words >= 80
    reason: short
"""
QUERY = "SELECT id, reject_step, reject_reason, source, text_stats__words, text FROM documents ORDER BY id, reject_reason"


def documents(run):
    con = duckdb.connect(str(run / "curator.duckdb"), read_only=True)
    try:
        return con.execute(QUERY).fetchall()
    finally:
        con.close()


@pytest.fixture
def big_files(tmp_path, dolma_rows):
    """The dolma sample as one JSONL (no ids, with bad and blank lines), its .gz and .zst, and a Parquet of many row groups."""
    folder = tmp_path / "in"
    folder.mkdir()
    lines = [json.dumps({"text": r["text"], "url": r["url"]}) for r in dolma_rows[:400]]
    lines.insert(57, "{not json")
    lines.insert(130, "")
    lines.insert(131, '{"text": 5}')
    raw = ("\n".join(lines) + "\n").encode()
    (folder / "a.jsonl").write_bytes(raw)
    (folder / "b.jsonl.gz").write_bytes(gzip.compress(raw))
    (folder / "c.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(raw))
    table = pa.Table.from_pylist([{"text": r["text"], "url": r["url"]} for r in dolma_rows])
    pq.write_table(table, folder / "d.parquet", row_group_size=40)
    return folder


def run(tmp_path, folder, name, workers=1, **options):
    pipe = load_pipeline(pipeline_file(tmp_path, PIPELINE), None)
    for key, value in options.items():
        setattr(pipe.options, key, value)
    return run_pipeline(pipe, tmp_path / name, inputs=[str(folder / "*")], progress=False, workers=workers)


def test_split_units_give_the_rows_ids_and_sources_of_whole_files(tmp_path, big_files):
    whole = run(tmp_path, big_files, "whole")
    split = run(tmp_path, big_files, "split", workers=2, unit_rows=50)
    assert whole["input"] == split["input"] == 3 * 403 + 697 - 3  # 3 JSONL copies (blank line not a row) + Parquet
    assert split["balanced"] and whole["kept"] == split["kept"]
    assert documents(tmp_path / "split") == documents(tmp_path / "whole")
    markers = sorted(p.stem for p in (tmp_path / "split" / "pass-0" / "_done").glob("*.json"))
    assert len(markers) == 4 * 9 and markers[0] == "part-00000-0000"  # 403 lines / 50; 697 rows in 80-row units (2 groups)
    assert len(list((tmp_path / "whole" / "pass-0" / "_done").glob("*.json"))) == 4
    # generated ids count lines (JSONL) and rows (Parquet) of the file, and bad lines keep their line numbers
    ids = {r[0] for r in documents(tmp_path / "split")}
    assert {"a.jsonl:0", "a.jsonl:402", "d.parquet:696", "c.jsonl.zst:56"} <= ids
    bad = {r[3]: r[2] for r in documents(tmp_path / "split") if r[1] == "read"}
    assert bad[f"{big_files / 'b.jsonl.gz'}:58"].startswith("invalid_json") and bad[f"{big_files / 'a.jsonl'}:132"].startswith("text_not_string")


def test_split_by_size_splits_at_line_starts_and_row_groups(tmp_path, big_files):
    units = make_units([str(big_files / "a.jsonl"), str(big_files / "d.parquet")], unit_bytes=200_000)
    jsonl = [u for u in units if u.path.endswith("a.jsonl")]
    data = (big_files / "a.jsonl").read_bytes()
    assert len(jsonl) == -(-len(data) // 200_000)
    for u in jsonl:
        assert u.part == "bytes" and (u.start == 0 or data[u.start - 1 : u.start] == b"\n")
        assert data[: u.start].count(b"\n") == u.first_row
    parquet = [u for u in units if u.path.endswith("d.parquet")]
    assert [u.part for u in parquet] == ["row_groups"] * len(parquet) and len(parquet) > 1
    assert parquet[1].first_row == 40 * parquet[0].stop
    assert [u.to_dict() for u in units] == [type(u).from_dict(u.to_dict()).to_dict() for u in units]


def test_resume_redoes_only_the_unfinished_units_of_a_split_file(tmp_path, big_files):
    first = run(tmp_path, big_files, "run", unit_rows=100)
    expected = documents(tmp_path / "run")
    done = tmp_path / "run" / "pass-0" / "_done"
    before = {p.name: p.stat().st_mtime_ns for p in done.glob("*.json")}
    for name in ("part-00000-0002.json", "part-00003-0004.json"):  # as if killed before these finished
        (done / name).unlink()
    second = run(tmp_path, big_files, "run", unit_rows=100)
    after = {p.name: p.stat().st_mtime_ns for p in done.glob("*.json")}
    assert {n for n in after if before.get(n) != after[n]} == {"part-00000-0002.json", "part-00003-0004.json"}
    assert first["kept"] == second["kept"] and second["balanced"]
    # another split of the same run: the old units' shards go, the rows stay the same
    third = run(tmp_path, big_files, "run", unit_rows=1000)
    assert len(list(done.glob("*.json"))) == 4 and third["kept"] == first["kept"]
    assert documents(tmp_path / "run") == expected and len(expected) == first["input"]
