"""Bad input gets a clear error naming file and row, or is quarantined; no valid row is lost."""

from __future__ import annotations

import gzip
import json
import re

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


class MixedTypes(MapStep):
    """A number for short texts, a string for long ones: no one column type."""

    name = "mixed_types"

    def process(self, batch):
        return {"size": [len(t) if len(t) < 3000 else "long" for t in batch.column("text").to_pylist()]}


class NumberReasons(FilterStep):
    name = "number_reasons"

    def filter(self, batch):
        return FilterResult([i % 2 == 0 for i in range(batch.num_rows)], list(range(batch.num_rows)))


class WordMask(FilterStep):
    """Says "no" for every row; numpy would read the strings as True and keep them all."""

    name = "word_mask"

    def filter(self, batch):
        return FilterResult(["no"] * batch.num_rows)


class _Plugin:
    @hookimpl
    def register_steps(self, register):
        for cls in (Fragile, BadContract, MixedTypes, NumberReasons, WordMask):
            register(cls)


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


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ("bad_contract", "filter 'bad_contract': keep mask has 1 values for 60 rows"),
        ("mixed_types", "map step 'mixed_types' column 'size': values of mixed or unsupported types"),
        ("number_reasons", "filter 'number_reasons': a reason is int (1), expected a string or None"),
        ("word_mask", "filter 'word_mask': keep mask holds <U2 values such as np.str_('no'), expected True/False"),
    ],
)
def test_a_step_breaking_its_contract_is_a_step_error_never_a_silent_keep(tmp_path, register_plugin, tiny_shard, step, message):
    register_plugin(_Plugin(), "fragile-plugin")
    from curator.plugins import get_registry

    summary = run(tmp_path, get_registry(), [tiny_shard], steps=f"  - step: {step}\n")
    assert summary["kept"] == 0 and summary["rejected"] == 60 and summary["balanced"]
    assert summary["errors"][step][0].startswith(f"StepError: {message}")
    reasons = {r[1:3] for r in rejected(tmp_path)}
    assert len(reasons) == 1 and next(iter(reasons))[0] == step and next(iter(reasons))[1].startswith(f"error: StepError: {message}")
    again = tmp_path / "again"
    again.mkdir()
    # with --fail-fast the run stops, and a message naming the step also names its plugin
    expected = message.replace(f"step '{step}'", f"step '{step}' (plugin 'fragile-plugin')", 1)
    with pytest.raises(StepError, match=f"^{re.escape(expected)}"):
        run(again, get_registry(), [tiny_shard], steps=f"  - step: {step}\n", fail_fast=True)


# --------------------------------------------------------------------------- ordinary input that used to crash a run


def accounted(tmp_path, summary, n_input, run="run"):
    """Every input row is kept or rejected (quarantined rows are rejected with reject_step 'read'),
    and the run's tables read back whole through its DuckDB catalog."""
    assert summary["input"] == n_input, summary
    assert summary["kept"] + summary["rejected"] == n_input and summary["balanced"]
    con = duckdb.connect(str(tmp_path / run / "curator.duckdb"), read_only=True)
    rows = con.execute("SELECT * FROM documents").fetchall()  # raises if any shard holds bytes DuckDB refuses
    assert len(rows) == n_input
    counts = con.execute("SELECT (SELECT count(*) FROM kept), (SELECT count(*) FROM rejected), (SELECT count(*) FROM quarantine)").fetchone()
    assert counts[0] == summary["kept"] and counts[1] == summary["rejected"]
    return con


def quarantined(con):
    return {r[0]: r[1:] for r in con.execute("SELECT source, reject_reason, id, text FROM rejected WHERE reject_step = 'read' ORDER BY source").fetchall()}


def write_lines(path, lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_empty_object_fields_are_kept_as_json_text(tmp_path, registry):
    lines = [json.dumps({"id": f"d{i}", "text": f"document {i}", "meta": {}, "deep": {"a": {}}}).encode() for i in range(5)]
    path = write_lines(tmp_path / "empty_objects.jsonl", lines)
    con = accounted(tmp_path, run(tmp_path, registry, [path]), 5)
    assert con.execute("SELECT DISTINCT meta, deep FROM kept").fetchall() == [("{}", '{"a": {}}')]


def test_lone_surrogates_are_quarantined_naming_field_and_line(tmp_path, registry):
    lines = [
        b'{"id": "ok1", "text": "fine"}',
        b'{"id": "s1", "text": "half a pair \\ud800 here"}',
        b'{"id": "s2", "text": "fine text", "title": "\\uDC00"}',
        b'{"id": "pair", "text": "a real pair \\ud83d\\ude00 is an emoji"}',
        b'{"id": "escaped", "text": "an escaped backslash \\\\ud800 is plain text"}',
    ]
    path = write_lines(tmp_path / "surrogates.jsonl", lines)
    con = accounted(tmp_path, run(tmp_path, registry, [path]), 5)
    bad = quarantined(con)
    assert set(bad) == {f"{path}:2", f"{path}:3"}
    assert bad[f"{path}:2"][0].startswith("lone_surrogate: field 'text'")
    assert bad[f"{path}:3"][0].startswith("lone_surrogate: field 'title'")
    assert "\\ud800" in bad[f"{path}:2"][2]  # the line as it was, readable
    texts = dict(con.execute("SELECT id, text FROM kept").fetchall())
    assert texts["pair"] == "a real pair \U0001f600 is an emoji" and texts["escaped"] == "an escaped backslash \\ud800 is plain text"


def test_input_columns_named_like_curators_own_are_renamed(tmp_path, registry, dolma_rows):
    rows = [{"id": r["id"], "text": r["text"], "source": "common-crawl", "reject_step": "theirs", "reject_reason": "upstream"} for r in dolma_rows[:30]]
    write_jsonl(tmp_path / "in" / "a.jsonl", rows[:15])
    pq.write_table(pa.Table.from_pylist(rows[15:]), tmp_path / "in" / "b.parquet")
    steps = "  - step: sql_filter\n    where: length(text) > 2000\n    reason: short\n"
    summary = run(tmp_path, registry, [tmp_path / "in"], steps=steps)
    con = accounted(tmp_path, summary, 30)
    assert 0 < summary["kept"] < 30
    assert con.execute("SELECT DISTINCT input__source, input__reject_step, input__reject_reason FROM documents").fetchall() == [("common-crawl", "theirs", "upstream")]
    assert con.execute("SELECT DISTINCT reject_step, reject_reason FROM rejected").fetchall() == [("sql_filter", "short")]
    kept_columns = [r[0] for r in con.execute("DESCRIBE kept").fetchall()]
    assert "source" not in kept_columns and "reject_step" not in kept_columns  # rejected rows' `source` is curator's: file:line


def test_mapped_id_and_text_columns_rename_the_originals(tmp_path, registry):
    rows = [{"doc_id": f"d{i}", "content": f"the real text {i}", "id": i, "text": f"a summary {i}"} for i in range(10)]
    write_jsonl(tmp_path / "mapped.jsonl", rows)
    pipe = load_pipeline(pipeline_file(tmp_path, "input:\n  id_column: doc_id\n  text_column: content\nsteps:\n  - step: text_stats\n"), registry)
    summary = run_pipeline(pipe, tmp_path / "run", inputs=[str(tmp_path / "mapped.jsonl")], progress=False)
    con = accounted(tmp_path, summary, 10)
    assert con.execute("SELECT id, text, input__id, input__text FROM kept ORDER BY input__id LIMIT 1").fetchone() == ("d0", "the real text 0", 0, "a summary 0")


def test_binary_ids_with_invalid_utf8_are_quarantined(tmp_path, registry):
    ids = pa.array([b"first", b"\xff\xfebad", b"third", None], pa.binary())
    path = tmp_path / "binary_ids.parquet"
    pq.write_table(pa.table({"id": ids, "text": ["one", "two", "three", "four"]}), path)
    con = accounted(tmp_path, run(tmp_path, registry, [path]), 4)
    assert sorted(r[0] for r in con.execute("SELECT id FROM kept").fetchall()) == ["binary_ids.parquet:3", "first", "third"]
    bad = quarantined(con)
    assert list(bad) == [f"{path}:row 1"] and bad[f"{path}:row 1"][0].startswith("invalid_utf8_id: byte 0")


def test_a_type_that_changes_within_a_file_and_across_files(tmp_path, registry):
    # "year" is a number for the first 1,000 lines, then a string; "meta" goes from object to string
    rows = [{"id": f"a{i}", "text": f"doc {i}", "year": 2020 if i < 1000 else "2020", "meta": {"k": i} if i < 1000 else "flat"} for i in range(1500)]
    write_jsonl(tmp_path / "in" / "drift.jsonl", rows)
    write_jsonl(tmp_path / "in" / "numbers.jsonl", [{"id": f"b{i}", "text": f"doc {i}", "year": 1999} for i in range(10)])
    write_jsonl(tmp_path / "in" / "strings.jsonl", [{"id": f"c{i}", "text": f"doc {i}", "year": "1999"} for i in range(10)])
    pipe = load_pipeline(pipeline_file(tmp_path, "batch_size: 400\nsteps:\n  - step: text_stats\n"), registry)
    summary = run_pipeline(pipe, tmp_path / "run", inputs=[str(tmp_path / "in")], progress=False)
    con = accounted(tmp_path, summary, 1520)
    assert summary["kept"] == 1520
    assert con.execute("SELECT year, meta FROM kept WHERE id = 'a999'").fetchone() == ("2020", '{"k": 999}')
    assert con.execute("SELECT year, meta FROM kept WHERE id = 'a1000'").fetchone() == ("2020", "flat")
    assert con.execute("SELECT count(*) FROM kept WHERE CAST(year AS VARCHAR) IN ('1999', '2020')").fetchone()[0] == 1520


def test_very_deep_nesting_is_quarantined_before_any_parser(tmp_path, registry):
    deep = b'{"id": "deep", "text": "x", "v": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    deep_object = b'{"id": "deep2", "text": "y", "v": ' + b'{"a":' * 70 + b"1" + b"}" * 70 + b"}"
    brackets_in_text = json.dumps({"id": "code", "text": "[" * 500 + " brackets in a string are text " + "]" * 500}).encode()
    lines = [b'{"id": "ok", "text": "fine"}', deep, brackets_in_text, deep_object, b'{"id": "ok2", "text": "fine", "v": [[1, 2], [3]]}']
    path = write_lines(tmp_path / "deep.jsonl", lines)
    con = accounted(tmp_path, run(tmp_path, registry, [path]), 5)
    bad = quarantined(con)
    assert set(bad) == {f"{path}:2", f"{path}:4"}
    assert all(reason.startswith("too_deep: JSON nested deeper than 64") for reason, _, _ in bad.values())
    assert sorted(r[0] for r in con.execute("SELECT id FROM kept").fetchall()) == ["code", "ok", "ok2"]


def test_invalid_utf8_in_jsonl_never_reaches_kept(tmp_path, registry):
    # every line is valid JSON, so the fast path would have taken the file whole
    lines = [json.dumps({"id": f"d{i}", "text": f"text {i}"}).encode() for i in range(6)]
    lines[2] = b'{"id": "latin1", "text": "caf\xe9 au lait"}'
    lines[4] = b'{"id": "d4", "text": "fine", "title": "\xff\xfe"}'
    path = write_lines(tmp_path / "latin1.jsonl", lines)
    con = accounted(tmp_path, run(tmp_path, registry, [path]), 6)
    bad = quarantined(con)
    assert {k: v[0] for k, v in bad.items()} == {f"{path}:3": "invalid_utf8: byte 29", f"{path}:5": "invalid_utf8: byte 39"}
    assert bad[f"{path}:3"][2] == '{"id": "latin1", "text": "caf\\xe9 au lait"}'  # shown, not lost


def test_invalid_utf8_in_parquet_strings_is_quarantined(tmp_path, registry):
    text = pa.array([b"good one", b"caf\xe9", b"good two", b"good three"], pa.binary()).view(pa.string())
    title = pa.array([b"t", b"t", b"\xff", b"t"], pa.binary()).view(pa.string())
    path = tmp_path / "bad_strings.parquet"
    pq.write_table(pa.table({"id": ["a", "b", "c", "d"], "text": text, "title": title}), path)
    con = accounted(tmp_path, run(tmp_path, registry, [path]), 4)
    bad = quarantined(con)
    assert {k: v[0] for k, v in bad.items()} == {f"{path}:row 1": "invalid_utf8: column 'text'", f"{path}:row 2": "invalid_utf8: column 'title'"}
    assert bad[f"{path}:row 1"][2] == "caf\\xe9"
    assert sorted(r[0] for r in con.execute("SELECT id FROM kept").fetchall()) == ["a", "d"]


@pytest.mark.parametrize("suffix", [".zst", ".gz"])
def test_truncated_compressed_jsonl_keeps_rows_read_and_names_the_file(tmp_path, registry, dolma_rows, suffix):
    import zstandard

    raw = b"".join(json.dumps({"id": f"{r['id']}-{i}", "text": r["text"]}).encode() + b"\n" for i, r in enumerate(dolma_rows * 3))
    packed = zstandard.ZstdCompressor().compress(raw) if suffix == ".zst" else gzip.compress(raw)
    path = tmp_path / f"cut.jsonl{suffix}"
    path.write_bytes(packed[: len(packed) * 6 // 10])
    summary = run(tmp_path, registry, [path])
    assert not any("empty file" in w for w in summary["warnings"])
    [problem] = summary["unreadable"]
    assert problem["source"] == str(path) and "ends early" in problem["problem"]
    n = summary["input"]
    assert 0 < n < len(dolma_rows) * 3 and f"read {n - 1} complete rows before it" in problem["problem"]
    con = accounted(tmp_path, summary, n)
    cut = [v for v in quarantined(con).values() if v[0].startswith("truncated")]
    assert len(cut) == 1  # the line the stream ends inside, set aside (not parsed as broken JSON)
    again = tmp_path / "again"
    again.mkdir()
    with pytest.raises(BadInputError, match=rf"{path}: {suffix[1:].replace('zst', 'zstd').replace('gz', 'gzip')} stream ends early .*; \d+ complete rows before it"):
        run(again, registry, [path], on_bad="fail")


def test_symlink_loops_and_duplicate_links_read_each_file_once(tmp_path, registry):
    folder = tmp_path / "in"
    write_jsonl(folder / "a.jsonl", [{"id": f"a{i}", "text": "t"} for i in range(7)])
    write_jsonl(folder / "sub" / "b.jsonl", [{"id": f"b{i}", "text": "t"} for i in range(3)])
    (folder / "same_as_a.jsonl").symlink_to(folder / "a.jsonl")
    (folder / "sub" / "loop").symlink_to(folder, target_is_directory=True)
    (folder / "sub" / "dangling.jsonl").symlink_to(tmp_path / "nowhere.jsonl")
    con = accounted(tmp_path, run(tmp_path, registry, [folder]), 10)
    assert con.execute("SELECT count(DISTINCT id) FROM kept").fetchone()[0] == 10
    from curator.shards import discover_inputs

    real = sorted(str(p.resolve()) for p in (folder / "a.jsonl", folder / "sub" / "b.jsonl"))
    assert discover_inputs([str(folder / "**" / "*.jsonl")]) == real
    assert discover_inputs([str(folder / "*.jsonl"), str(folder / "sub" / "loop" / "a.jsonl")]) == real[:1]


def test_dictionary_encoded_and_large_string_text_are_accepted(tmp_path, registry):
    folder = tmp_path / "in"
    folder.mkdir()
    texts = ["spam", "ham", "spam", "eggs"]
    pq.write_table(pa.table({"id": ["a", "b", "c", "d"], "text": pa.array(texts).dictionary_encode(), "lang": pa.array(["en"] * 4).dictionary_encode()}), folder / "category.parquet")
    pq.write_table(pa.table({"id": ["e", "f"], "text": pa.array(["large", "strings"], pa.large_string())}), folder / "large.parquet")
    try:
        import pandas as pd
    except ImportError:
        pd = None
    n = 6
    if pd is not None:  # what a user actually writes: a pandas category column
        pd.DataFrame({"id": ["g", "h"], "text": pd.Categorical(["x", "y"])}).to_parquet(folder / "pandas.parquet")
        n = 8
    con = accounted(tmp_path, run(tmp_path, registry, [folder]), n)
    assert con.execute("SELECT count(*) FROM kept").fetchone()[0] == n
    assert con.execute("SELECT text, text_stats__chars FROM kept WHERE id = 'c'").fetchone() == ("spam", 4)


def test_null_lines_and_objects_with_empty_keys(tmp_path, registry):
    # Arrow's JSON reader crashes the process on a first line `null` and reads later ones as rows;
    # DuckDB fails (or corrupts its state) on a struct with a field named "".
    lines = [b"null", b'{"id": "a", "text": "kept text", "meta": {"": 1, "0": null}}', b"null", b'{"id": "b", "text": "more text", "": "empty key"}']
    path = write_lines(tmp_path / "nulls.jsonl", lines)
    con = accounted(tmp_path, run(tmp_path, registry, [path]), 4)
    assert {k: v[0] for k, v in quarantined(con).items()} == {f"{path}:1": "not_an_object: NoneType", f"{path}:3": "not_an_object: NoneType"}
    assert con.execute("SELECT meta FROM kept WHERE id = 'a'").fetchone() == ('{"": 1, "0": null}',)
    parquet = tmp_path / "empty_key.parquet"
    pq.write_table(pa.table({"id": ["p"], "text": ["t"], "meta": pa.array([{"": "x", "0": None}])}), parquet)
    again = tmp_path / "again"
    again.mkdir()
    con = accounted(again, run(again, registry, [parquet]), 1)
    assert con.execute("SELECT meta FROM kept").fetchone() == ('{"": "x", "0": null}',)
