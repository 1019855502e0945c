"""Property-based: whatever JSONL or Parquet a user feeds curator, no row is lost and the run reads back.

hypothesis generates input files with random schemas, types, encodings (valid
and invalid UTF-8, lone surrogates), nesting, empty and NULL texts, duplicate
ids and sizes. Each example is a real run (local executor, one worker, a map
step and a filter step) whose every input row must end up kept or rejected,
and whose ``documents`` view must read back whole through the run's catalog.
"""

from __future__ import annotations

import gzip
import json
import os
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import zstandard
from conftest import pipeline_file
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from curator import catalog, plugins
from curator.config import load_pipeline
from curator.runner import run_pipeline

PIPELINE = "batch_size: {batch}\nsteps:\n  - step: text_stats\n  - step: sql_filter\n    where: text_stats__chars > 5\n"
# Bounded: ~30 real runs in well under a minute. Shrinking is off because
# shrinking a failing run can take minutes; the failing example is still printed.
SETTINGS = settings(
    max_examples=int(os.environ.get("CURATOR_PROPERTY_EXAMPLES", 30)),
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

# field names: plain ones, curator's own (renamed on read), and ones only some rows have
FIELD_NAMES = st.sampled_from(["meta", "year", "url", "lang", "source", "reject_step", "reject_reason", "score", "tags", "__line", ""])
texts = st.one_of(st.text(max_size=40), st.just(""), st.text(alphabet=st.characters(codec="utf-8"), min_size=5, max_size=80))
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70), st.floats(allow_nan=False), texts),
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(st.text(max_size=5), children, max_size=3)),
    max_leaves=8,
)
ids = st.one_of(st.sampled_from(["a", "b", "c", "dup"]), st.text(min_size=1, max_size=8), st.integers(-5, 5), st.none())


@st.composite
def json_rows(draw):
    row = {}
    if draw(st.integers(0, 9)):  # one in ten rows has no id: it gets one from file and line
        row["id"] = draw(ids)
    choice = draw(st.integers(0, 9))
    if choice < 7:
        row["text"] = draw(texts)
    elif choice == 7:
        row["text"] = None
    elif choice == 8:
        row["text"] = draw(json_values)  # a number, list or object where text is expected
    for name in draw(st.lists(FIELD_NAMES, max_size=3, unique=True)):
        row[name] = draw(json_values)
    return row


# raw-line damage: what real dumps contain
BAD_LINES = [
    b'{"id": "broken", "text": "no end',
    b'{"id": "latin1", "text": "caf\xe9"}',
    b'{"id": "sur", "text": "half \\ud800 pair"}',
    b'{"id": "sur2", "text": "ok", "meta": {"k": "\\udfff"}}',
    b'{"id": "deep", "text": "x", "v": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    b"[1, 2, 3]",
    b"null",
    b'{"id": "nan", "text": "NaN is not JSON", "score": NaN}',
    b'{"id": "dupkey", "text": "first", "text": "second"}',
    b'\xef\xbb\xbf{"id": "bom", "text": "byte order mark"}',
]


@st.composite
def jsonl_files(draw):
    rows = draw(st.lists(json_rows(), max_size=25))
    ascii_only = draw(st.booleans())
    lines = [json.dumps(r, ensure_ascii=ascii_only).encode("utf-8") for r in rows]
    for bad in draw(st.lists(st.sampled_from(BAD_LINES), max_size=3)):
        lines.insert(draw(st.integers(0, len(lines))), bad)
    if draw(st.booleans()):
        lines.insert(draw(st.integers(0, len(lines))), b"   ")  # blank lines are not rows
    codec = draw(st.sampled_from(["", ".gz", ".zst"]))
    data = b"\n".join(lines) + (b"\n" if draw(st.booleans()) else b"")
    n = sum(1 for line in lines if line.strip())
    return "jsonl", codec, data, n


ARROW_STRINGS = st.lists(st.one_of(st.none(), texts, st.binary(max_size=6)), min_size=1)


def _string_array(values: list, kind: str) -> pa.Array:
    """Strings as Arrow may hold them, bytes that are not UTF-8 included (Parquet readers do not check)."""
    raw = [v if v is None or isinstance(v, bytes) else v.encode("utf-8") for v in values]
    arr = pa.array(raw, pa.binary()).view(pa.string())
    if kind == "large":
        return pa.array(raw, pa.large_binary()).view(pa.large_string())
    if kind == "dictionary" and all(v is None or isinstance(v, str) for v in values):
        return pa.array(values, pa.string()).dictionary_encode()
    return arr


@st.composite
def parquet_files(draw):
    n = draw(st.integers(0, 25))
    columns: dict[str, pa.Array] = {}
    id_kind = draw(st.sampled_from(["string", "int", "binary", "none"]))
    if id_kind == "string":
        columns["id"] = pa.array(draw(st.lists(st.one_of(st.none(), st.sampled_from(["a", "b", "dup"]), st.text(max_size=6)), min_size=n, max_size=n)), pa.string())
    elif id_kind == "int":
        columns["id"] = pa.array(draw(st.lists(st.integers(0, 8), min_size=n, max_size=n)), pa.int64())
    elif id_kind == "binary":
        columns["id"] = pa.array(draw(st.lists(st.binary(min_size=1, max_size=4), min_size=n, max_size=n)), pa.binary())
    text_kind = draw(st.sampled_from(["string", "string", "large", "dictionary", "int", "null", "missing"]))
    if text_kind in ("string", "large", "dictionary"):
        values = draw(st.lists(st.one_of(st.none(), texts, st.binary(max_size=6)) if text_kind != "dictionary" else st.one_of(st.none(), texts), min_size=n, max_size=n))
        columns["text"] = _string_array(values, text_kind)
    elif text_kind == "int":
        columns["text"] = pa.array(draw(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=n, max_size=n)), pa.int64())
    elif text_kind == "null":
        columns["text"] = pa.nulls(n, pa.string())
    for name in draw(st.lists(FIELD_NAMES, max_size=3, unique=True)):
        kind = draw(st.sampled_from(["string", "float", "list", "struct", "empty_struct", "dictionary"]))
        if kind in ("list", "struct"):
            # A Parquet dataset declares its nested columns: one type per name across files.
            # (A struct in one file and a list or text under the same name in another is not
            # unified by the catalog yet; see docs/reliability.md.)
            name = f"parquet_{kind}"
        if kind in ("string", "dictionary"):
            columns[name] = _string_array(draw(st.lists(st.one_of(st.none(), texts) if kind == "dictionary" else st.one_of(st.none(), texts, st.binary(max_size=4)), min_size=n, max_size=n)), kind)
        elif kind == "float":
            columns[name] = pa.array(draw(st.lists(st.one_of(st.none(), st.floats()), min_size=n, max_size=n)), pa.float64())
        elif kind == "list":
            columns[name] = pa.array(draw(st.lists(st.one_of(st.none(), st.lists(st.integers(-9, 9), max_size=3)), min_size=n, max_size=n)), pa.list_(pa.int64()))
        elif kind == "struct":
            columns[name] = pa.array(draw(st.lists(st.fixed_dictionaries({"k": st.one_of(st.none(), texts)}), min_size=n, max_size=n)), pa.struct([("k", pa.string())]))
        else:
            columns[name] = pa.array([{}] * n, pa.struct([]))
    if not columns:
        columns["other"] = pa.nulls(n, pa.int64())
    table = pa.table(columns)
    sink = pa.BufferOutputStream()
    try:
        pq.write_table(table, sink, row_group_size=draw(st.integers(1, 30)))
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
        # Parquet cannot store every Arrow table (a struct without fields): write what a real tool would
        table = table.drop_columns([f.name for f in table.schema if pa.types.is_struct(f.type) and f.type.num_fields == 0])
        if not table.num_columns:
            table = pa.table({"other": pa.nulls(n, pa.int64())})
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
    return "parquet", "", sink.getvalue().to_pybytes(), n


def _write(folder: Path, index: int, spec) -> None:
    fmt, codec, data, _ = spec
    if codec == ".gz":
        data = gzip.compress(data)
    elif codec == ".zst":
        data = zstandard.ZstdCompressor().compress(data)
    (folder / f"part{index}.{'jsonl' if fmt == 'jsonl' else 'parquet'}{codec}").write_bytes(data)


@SETTINGS
@given(files=st.lists(st.one_of(jsonl_files(), parquet_files()), min_size=1, max_size=3), batch=st.sampled_from([1, 3, 1000]))
def test_every_input_row_is_kept_or_rejected_and_documents_read_back(tmp_path, files, batch):
    with tempfile.TemporaryDirectory(dir=tmp_path) as tmp:
        folder = Path(tmp) / "in"
        folder.mkdir()
        for i, spec in enumerate(files):
            _write(folder, i, spec)
        n_input = sum(spec[3] for spec in files)
        plugins.reset()
        pipe = load_pipeline(pipeline_file(Path(tmp), PIPELINE.format(batch=batch)), plugins.get_registry())
        summary = run_pipeline(pipe, Path(tmp) / "run", inputs=[str(folder)], progress=False)

        assert summary["unreadable"] == [], summary["unreadable"]
        assert summary["input"] == n_input
        assert summary["kept"] + summary["rejected"] == n_input and summary["balanced"]
        con = catalog.open_readonly(Path(tmp) / "run")
        try:
            documents = con.execute("SELECT * FROM documents").fetchall()
            assert len(documents) == n_input
            kept = con.execute("SELECT id, text FROM kept").fetchall()
            assert all(isinstance(i, str) and isinstance(t, str) and len(t) > 5 for i, t in kept)
            assert len({i for i, _ in kept}) == len(kept) or summary["duplicate_ids"]["count"]
            quarantined = con.execute("SELECT source FROM rejected WHERE reject_step = 'read'").fetchall()
            assert all(s and s[0].startswith(str(folder.resolve())) for s in quarantined)  # names the file (and line or row)
        finally:
            con.close()
