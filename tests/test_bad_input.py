"""Bad input gets a clear error naming file and row, or is quarantined; no valid row is lost."""

from __future__ import annotations

import gzip
import json

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import curator_cli, pipeline_file, write_jsonl

from curator import FilterResult, FilterStep, MapStep, hookimpl
from curator.config import load_pipeline
from curator.errors import BadInputError, StepError
from curator.runner import run_pipeline


def run(tmp_path, registry, inputs, steps="  - step: text_stats\n", on_bad="quarantine", **kwargs):
    pipe = load_pipeline(pipeline_file(tmp_path, f"on_bad_input: {on_bad}\nsteps:\n{steps}"), registry)
    return run_pipeline(pipe, tmp_path / "run", inputs=[str(i) for i in inputs], progress=False, **kwargs)


def rejected(tmp_path):
    con = duckdb.connect(str(tmp_path / "run" / "curator.duckdb"), read_only=True)
    return con.execute("SELECT id, reject_step, reject_reason, source FROM rejected ORDER BY source").fetchall()


def kept_ids(tmp_path):
    con = duckdb.connect(str(tmp_path / "run" / "curator.duckdb"), read_only=True)
    return sorted(r[0] for r in con.execute("SELECT id FROM kept").fetchall())


@pytest.fixture
def messy_jsonl(tmp_path, dolma_rows):
    """Real documents with broken lines in between: bad JSON, invalid UTF-8, NULL and non-string text, duplicates."""
    good = [json.dumps({"id": r["id"], "text": r["text"]}).encode() for r in dolma_rows[:20]]
    lines = good[:5] + [b'{"id": "broken", "text": "no closing brace'] + good[5:10]
    lines += [b'{"id": "latin1", "text": "caf\xe9"}', b'{"id": "nulltext", "text": null}', b'{"id": "number", "text": 42}']
    lines += [b"[1, 2, 3]", b"", good[3]] + good[10:]  # good[3] again: a duplicate id
    path = tmp_path / "messy.jsonl.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(b"\n".join(lines) + b"\n")
    return path, [r["id"] for r in dolma_rows[:20]]


def test_broken_jsonl_lines_are_quarantined_with_reason_and_line(tmp_path, registry, messy_jsonl):
    path, good_ids = messy_jsonl
    summary = run(tmp_path, registry, [path])
    assert kept_ids(tmp_path) == sorted(good_ids)  # no valid row lost
    rows = {r[2].split(":")[0]: r for r in rejected(tmp_path)}
    assert set(rows) == {"invalid_json", "invalid_utf8", "null_text", "text_not_string", "not_an_object", "duplicate_id"}
    assert rows["invalid_json"][3] == f"{path}:6"
    assert rows["invalid_utf8"][3] == f"{path}:12"
    assert all(r[1] == "read" for r in rows.values())
    assert summary["input"] == 26 and summary["balanced"]


def test_fail_mode_names_file_and_line(tmp_path, registry, messy_jsonl):
    path, _ = messy_jsonl
    with pytest.raises(BadInputError, match=rf"{path}:6: invalid_json"):
        run(tmp_path, registry, [path], on_bad="fail")


def test_cli_reports_bad_input_cleanly(tmp_path, messy_jsonl):
    path, _ = messy_jsonl
    pipe = pipeline_file(tmp_path, "steps:\n  - step: noop\n")
    proc = curator_cli("run", str(pipe), "-i", str(path), "-o", str(tmp_path / "r"), "--on-bad-input", "fail", "-q", check=False)
    assert proc.returncode == 1 and f"{path}:6" in proc.stderr and "Traceback" not in proc.stderr


def test_corrupt_and_truncated_parquet_are_set_aside_others_kept(tmp_path, registry, tiny_shard):
    good = tiny_shard
    data = good.read_bytes()
    (tmp_path / "in" / "truncated.parquet").write_bytes(data[: len(data) // 2])
    (tmp_path / "in" / "garbage.parquet").write_bytes(b"this is not parquet at all" * 10)
    (tmp_path / "in" / "empty.parquet").write_bytes(b"")
    summary = run(tmp_path, registry, [tmp_path / "in" / "*.parquet"])
    assert summary["kept"] == 60
    problems = {u["source"].rsplit("/", 1)[-1]: u["problem"] for u in summary["unreadable"]}
    assert set(problems) == {"truncated.parquet", "garbage.parquet"}
    assert any("empty.parquet: empty file" in w for w in summary["warnings"])
    again = tmp_path / "again"
    again.mkdir()
    with pytest.raises(BadInputError, match="garbage.parquet: unreadable Parquet"):
        run(again, registry, [tmp_path / "in" / "garbage.parquet"], on_bad="fail")


def test_damaged_row_group_costs_only_its_rows(tmp_path, registry, dolma_rows):
    path = tmp_path / "groups.parquet"
    pq.write_table(pa.Table.from_pylist(dolma_rows[:300]), path, row_group_size=100, compression="none")
    meta = pq.ParquetFile(path).metadata
    col = meta.row_group(1).column(1)  # the text column of the middle row group
    raw = bytearray(path.read_bytes())
    start = col.data_page_offset
    raw[start : start + 64] = b"\xff" * 64
    path.write_bytes(bytes(raw))
    summary = run(tmp_path, registry, [path])
    assert summary["kept"] == 200
    assert summary["unreadable"][0]["rows"] == 100 and "row group 1" in summary["unreadable"][0]["source"]


def test_missing_text_column_wrong_types_and_schema_drift(tmp_path, registry, dolma_rows):
    a = tmp_path / "in" / "a.parquet"
    a.parent.mkdir()
    pq.write_table(pa.table({"id": [1, 2, 3], "text": [r["text"] for r in dolma_rows[:3]], "lang": ["en"] * 3}), a)
    pq.write_table(pa.table({"id": ["x", "y"], "text": [r["text"] for r in dolma_rows[3:5]], "score": [0.5, 0.7]}), tmp_path / "in" / "b.parquet")
    pq.write_table(pa.table({"id": ["m"], "body": ["no text column here"]}), tmp_path / "in" / "c.parquet")
    pq.write_table(pa.table({"id": ["n1", "n2"], "text": [1.5, 2.5]}), tmp_path / "in" / "d.parquet")
    summary = run(tmp_path, registry, [tmp_path / "in"])
    assert summary["kept"] == 5 and summary["input"] == 8 and summary["balanced"]
    assert kept_ids(tmp_path) == ["1", "2", "3", "x", "y"]  # integer ids become strings
    reasons = sorted(r[2] for r in rejected(tmp_path))
    assert reasons == ["missing_text_column: text", "text_not_string: double", "text_not_string: double"]
    con = duckdb.connect(str(tmp_path / "run" / "curator.duckdb"), read_only=True)
    assert con.execute("SELECT count(lang), count(score) FROM kept").fetchone() == (3, 2)  # both schemas carried


def test_duplicate_ids_within_a_shard(tmp_path, registry, dolma_rows):
    rows = [{"id": "same", "text": dolma_rows[0]["text"]}, {"id": "same", "text": dolma_rows[1]["text"]}, {"id": "other", "text": "x"}]
    write_jsonl(tmp_path / "d.jsonl", rows)
    summary = run(tmp_path, registry, [tmp_path / "d.jsonl"])
    assert summary["kept"] == 2 and [r[2] for r in rejected(tmp_path)] == ["duplicate_id: same"]


def test_duplicate_ids_across_files_are_reported(tmp_path, registry, dolma_rows):
    write_jsonl(tmp_path / "in" / "a.jsonl", [{"id": r["id"], "text": r["text"]} for r in dolma_rows[:10]])
    write_jsonl(tmp_path / "in" / "b.jsonl", [{"id": r["id"], "text": r["text"]} for r in dolma_rows[5:15]])
    summary = run(tmp_path, registry, [tmp_path / "in"])
    assert summary["duplicate_ids"]["count"] == 5 and summary["kept"] == 20
    stats = json.loads(curator_cli("stats", "--run", str(tmp_path / "run"), "--json").stdout)
    assert stats["duplicate_ids"]["examples"] == sorted(r["id"] for r in dolma_rows[5:10])
    again = tmp_path / "again"
    again.mkdir()
    with pytest.raises(BadInputError, match="ids repeated across input files"):
        run(again, registry, [tmp_path / "in"], on_bad="fail")


def test_empty_jsonl_file(tmp_path, registry, tiny_shard):
    (tmp_path / "empty.jsonl").write_text("\n\n")
    summary = run(tmp_path, registry, [tmp_path / "empty.jsonl", tiny_shard])
    assert summary["kept"] == 60 and any("empty file" in w for w in summary["warnings"])


class Fragile(MapStep):
    """Raises on documents that mention a word; works on the rest."""

    name = "fragile"

    def process(self, batch):
        out = []
        for text in batch.column("text").to_pylist():
            if "Wikipedia" in text:
                raise ValueError("cannot handle Wikipedia")
            out.append(len(text))
        return {"chars": out}


class BadContract(FilterStep):
    name = "bad_contract"

    def filter(self, batch):
        return FilterResult([True])  # one value for many rows


class _Plugin:
    @hookimpl
    def register_steps(self, register):
        register(Fragile)
        register(BadContract)


def test_step_raising_on_some_rows_quarantines_only_those(tmp_path, register_plugin, dolma_rows):
    register_plugin(_Plugin(), "fragile-plugin")
    from curator.plugins import get_registry

    write_jsonl(tmp_path / "d.jsonl", [{"id": r["id"], "text": r["text"]} for r in dolma_rows])
    bad_ids = sorted(r["id"] for r in dolma_rows if "Wikipedia" in r["text"])
    assert 0 < len(bad_ids) < 100
    summary = run(tmp_path, get_registry(), [tmp_path / "d.jsonl"], steps="  - step: fragile\n")
    rows = rejected(tmp_path)
    assert sorted(r[0] for r in rows) == bad_ids
    assert all(r[1] == "fragile" and r[2] == "error: ValueError: cannot handle Wikipedia" for r in rows)
    assert summary["kept"] == len(dolma_rows) - len(bad_ids)
    assert summary["errors"]["fragile"][0].startswith("ValueError")
    con = duckdb.connect(str(tmp_path / "run" / "curator.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM quarantine").fetchone()[0] == len(bad_ids)


def test_fail_fast_stops_at_the_first_raising_row(tmp_path, register_plugin, dolma_rows):
    register_plugin(_Plugin(), "fragile-plugin")
    from curator.plugins import get_registry

    write_jsonl(tmp_path / "d.jsonl", [{"id": r["id"], "text": r["text"]} for r in dolma_rows])
    with pytest.raises(StepError, match="cannot handle Wikipedia"):
        run(tmp_path, get_registry(), [tmp_path / "d.jsonl"], steps="  - step: fragile\n", fail_fast=True)


def test_broken_step_contract_is_an_error_not_a_quarantine(tmp_path, register_plugin, tiny_shard):
    register_plugin(_Plugin(), "fragile-plugin")
    from curator.plugins import get_registry

    with pytest.raises(StepError, match="keep mask has 1 values for 60 rows"):
        run(tmp_path, get_registry(), [tiny_shard], steps="  - step: bad_contract\n")
