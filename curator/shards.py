"""Parquet shard IO: reading inputs into the data contract, atomic writes, markers.

Reading is where bad input is met, so every reader returns two tables per
batch: rows that satisfy the contract (``id`` and ``text`` strings, ids unique
within the shard) and rows set aside with ``reject_step = "read"``, a
``reject_reason`` and ``source`` (file:line or file:row). Nothing is dropped
silently; a file that cannot be opened at all is reported by name.
"""

from __future__ import annotations

import glob
import gzip
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson
import pyarrow.parquet as pq

from curator.config import InputSpec
from curator.errors import BadInputError, ConfigError

JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")
COMPRESSION_SUFFIXES = {".gz": "gzip", ".zst": "zstd", ".zstd": "zstd"}
READ_STEP = "read"
REJECT_COLUMNS = ("reject_step", "reject_reason")


@dataclass(frozen=True)
class WorkUnit:
    """One input file (or one previous pass's output shard) and its output name."""

    index: int
    path: str
    shard: str
    #: prefix of generated ids: the file's path relative to the inputs' common root
    id_prefix: str
    #: the original input file, when ``path`` is an earlier pass's output
    origin: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "path": self.path, "shard": self.shard, "id_prefix": self.id_prefix, "origin": self.origin}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorkUnit:
        return cls(**data)


def discover_inputs(patterns: list[str]) -> list[str]:
    """Expand globs (and directories) into a sorted list of absolute file paths."""
    files: set[str] = set()
    for pattern in patterns:
        expanded = os.path.expanduser(pattern)
        if os.path.isdir(expanded):
            # a folder means the JSONL/Parquet files under it; a glob means what it matches
            matches = [m for m in glob.glob(os.path.join(expanded, "**", "*"), recursive=True) if os.path.isfile(m) and detect_format(m)]
        else:
            matches = [m for m in glob.glob(expanded, recursive=True) if os.path.isfile(m)]
        if not matches:
            raise ConfigError(f"input {pattern!r} matches no file")
        files.update(os.path.abspath(m) for m in matches)
    return sorted(files)


def make_units(files: list[str]) -> list[WorkUnit]:
    root = os.path.commonpath([os.path.dirname(f) for f in files]) if files else ""
    return [
        WorkUnit(index=i, path=f, shard=f"part-{i:05d}", id_prefix=os.path.relpath(f, root))
        for i, f in enumerate(files)
    ]


def detect_format(path: str) -> str | None:
    name = path.lower()
    for suffix in COMPRESSION_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith(JSONL_SUFFIXES):
        return "jsonl"
    return None


def _compression(path: str) -> str | None:
    for suffix, codec in COMPRESSION_SUFFIXES.items():
        if path.lower().endswith(suffix):
            return codec
    return None


# --------------------------------------------------------------------------- reading


class InputReader:
    """Reads one work unit into contract batches; see the module docstring."""

    def __init__(self, spec: InputSpec, batch_size: int, on_bad_input: str) -> None:
        self.spec = spec
        self.batch_size = batch_size
        self.on_bad_input = on_bad_input
        #: problems that affect a whole file or row group: {"source", "problem", "rows"}
        self.unreadable: list[dict[str, Any]] = []
        self.warnings: list[str] = []

    def read(self, unit: WorkUnit) -> Iterator[tuple[pa.Table, pa.Table | None]]:
        fmt = self.spec.format if self.spec.format != "auto" else detect_format(unit.path)
        if fmt is None:
            self._file_problem(unit.path, "not a .jsonl/.json(.gz/.zst) or .parquet file", None)
            return
        self._seen_ids: set[str] = set()
        self._row = 0
        reader = self._read_parquet if fmt == "parquet" else self._read_jsonl
        for table, bad in reader(unit):
            yield self._normalise(table, bad, unit)

    # -- problems

    def _file_problem(self, source: str, problem: str, rows: int | None) -> None:
        if self.on_bad_input == "fail":
            raise BadInputError(f"{source}: {problem}")
        self.unreadable.append({"source": source, "problem": problem, "rows": rows})

    # -- parquet

    def _read_parquet(self, unit: WorkUnit) -> Iterator[tuple[pa.Table, pa.Table | None]]:
        try:
            pf = pq.ParquetFile(unit.path)
        except Exception as exc:
            if os.path.getsize(unit.path) == 0:
                self.warnings.append(f"{unit.path}: empty file")
                return
            self._file_problem(unit.path, f"unreadable Parquet: {exc}", None)
            return
        if pf.metadata.num_rows == 0:
            self.warnings.append(f"{unit.path}: empty file")
        # Row group by row group, so one damaged row group costs only its rows.
        for group in range(pf.num_row_groups):
            rows = pf.metadata.row_group(group).num_rows
            try:
                for batch in pf.iter_batches(batch_size=self.batch_size, row_groups=[group]):
                    yield pa.Table.from_batches([batch]), None
            except Exception as exc:
                self._file_problem(f"{unit.path} row group {group}", f"unreadable: {exc}", rows)

    # -- jsonl

    def _open_bytes(self, path: str) -> bytes:
        codec = _compression(path)
        if codec == "gzip":
            with gzip.open(path, "rb") as fh:
                return fh.read()
        if codec == "zstd":
            import zstandard

            with open(path, "rb") as fh:
                return zstandard.ZstdDecompressor().stream_reader(fh).read()
        with open(path, "rb") as fh:
            return fh.read()

    def _read_jsonl(self, unit: WorkUnit) -> Iterator[tuple[pa.Table, pa.Table | None]]:
        try:
            data = self._open_bytes(unit.path)
        except Exception as exc:  # truncated gzip, bad zstd frame, unreadable file
            self._file_problem(unit.path, f"cannot decompress: {type(exc).__name__}: {exc}", None)
            return
        if not data.strip():
            self.warnings.append(f"{unit.path}: empty file")
            return
        table: pa.Table | None = None
        try:
            # Fast path: Arrow's parser; it gives up on the first bad line.
            table = pajson.read_json(io.BytesIO(data), read_options=pajson.ReadOptions(block_size=1 << 24))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            table = None
        if table is not None and _text_is_plain(table, self.spec.text_column):
            for offset in range(0, max(table.num_rows, 1), self.batch_size):
                yield table.slice(offset, self.batch_size), None
            return
        yield from self._read_jsonl_lines(unit, data)

    def _read_jsonl_lines(self, unit: WorkUnit, data: bytes) -> Iterator[tuple[pa.Table, pa.Table | None]]:
        """Line by line: every bad line becomes a rejected row saying why and where."""
        good: list[dict[str, Any]] = []
        bad: _BadRows = _BadRows(self.on_bad_input)
        lines = data.split(b"\n")
        for number, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            where = f"{unit.path}:{number}"
            try:
                obj = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as exc:
                bad.append(_bad_row(raw.decode("utf-8", "backslashreplace"), f"invalid_utf8: byte {exc.start}", where))
                continue
            except json.JSONDecodeError as exc:
                bad.append(_bad_row(raw.decode("utf-8", "backslashreplace"), f"invalid_json: {exc.msg} at column {exc.colno}", where))
                continue
            if not isinstance(obj, dict):
                bad.append(_bad_row(raw.decode("utf-8"), f"not_an_object: {type(obj).__name__}", where))
                continue
            text = obj.get(self.spec.text_column)
            if text is not None and not isinstance(text, str):
                bad.append(_bad_row(raw.decode("utf-8"), f"text_not_string: {type(text).__name__}", where))
                continue
            obj["__line"] = number
            good.append(obj)
            if len(good) >= self.batch_size:
                yield _table_from_rows(good), _bad_table(bad)
                good, bad = [], _BadRows(self.on_bad_input)
        if good or bad:
            yield _table_from_rows(good), _bad_table(bad)

    # -- the contract

    def _normalise(self, table: pa.Table, bad: pa.Table | None, unit: WorkUnit) -> tuple[pa.Table, pa.Table | None]:
        spec = self.spec
        n = table.num_rows
        lines = None
        if "__line" in table.column_names:
            lines = table.column("__line").to_pylist()
            table = table.drop_columns(["__line"])
        first_row = self._row
        self._row += n

        def where(i: int) -> str:
            return f"{unit.path}:{lines[i]}" if lines else f"{unit.path}:row {first_row + i}"

        if spec.text_column not in table.column_names:
            if n == 0:
                return _empty_contract(), bad
            problem = f"missing column {spec.text_column!r} (columns: {', '.join(table.column_names)}); set input.text_column"
            if self.on_bad_input == "fail":
                raise BadInputError(f"{unit.path}: {problem}")
            rows = [_bad_row(json.dumps(r, default=str), f"missing_text_column: {spec.text_column}", where(i)) for i, r in enumerate(table.to_pylist())]
            return _empty_contract(), _concat_bad(bad, _bad_table(rows))

        # id: renamed, cast to string, generated where missing (stable: file + row)
        if spec.id_column in table.column_names:
            ids = table.column(spec.id_column)
            table = table.drop_columns([spec.id_column])
            if not (pa.types.is_string(ids.type) or pa.types.is_large_string(ids.type)):
                ids = pc.cast(ids, pa.string()) if not pa.types.is_nested(ids.type) else pa.array([json.dumps(v) for v in ids.to_pylist()], pa.string())
            if ids.null_count:
                ids = pc.coalesce(ids, self._generated_ids(unit, first_row, n))
            ids = pc.cast(ids, pa.string())
        else:
            ids = self._generated_ids(unit, first_row, n)
        text = table.column(spec.text_column)
        table = table.drop_columns([spec.text_column])
        text_ok_type = pa.types.is_string(text.type) or pa.types.is_large_string(text.type)
        if text_ok_type:
            text = pc.cast(text, pa.string())
        table = table.add_column(0, "text", text if text_ok_type else pa.nulls(n, pa.string()))
        table = table.add_column(0, "id", ids)

        problems: dict[int, str] = {}
        if not text_ok_type:
            if self.on_bad_input == "fail":
                raise BadInputError(f"{unit.path}: column {spec.text_column!r} has type {text.type}, expected string")
            raw_text = [None if v is None else (v if isinstance(v, str) else json.dumps(v, default=str)) for v in text.to_pylist()]
            table = table.set_column(1, "text", pa.array(raw_text, pa.string()))
            problems = dict.fromkeys(range(n), f"text_not_string: {text.type}")
        elif text.null_count:
            for i in pc.indices_nonzero(pc.is_null(text)).to_pylist():
                problems[i] = "null_text"
        self._check_duplicates(ids, problems)
        if problems:
            if self.on_bad_input == "fail":
                i = min(problems)
                raise BadInputError(f"{where(i)}: {problems[i]}")
            order = sorted(problems)
            rejected = table.take(pa.array(order, pa.int64()))
            rejected = rejected.append_column("reject_step", pa.array([READ_STEP] * len(order), pa.string()))
            rejected = rejected.append_column("reject_reason", pa.array([problems[i] for i in order], pa.string()))
            rejected = rejected.append_column("source", pa.array([where(i) for i in order], pa.string()))
            mask = np.ones(n, dtype=bool)
            mask[order] = False
            table = table.filter(pa.array(mask))
            bad = _concat_bad(bad, rejected)
        return table, bad

    @staticmethod
    def _generated_ids(unit: WorkUnit, first_row: int, n: int) -> pa.Array:
        return pa.array([f"{unit.id_prefix}:{first_row + i}" for i in range(n)], pa.string())

    def _check_duplicates(self, ids: pa.Array | pa.ChunkedArray, problems: dict[int, str]) -> None:
        """Ids must be unique within a shard; later repeats are set aside."""
        seen = self._seen_ids
        id_list = ids.to_pylist()
        fresh = set(id_list)
        if len(fresh) == len(id_list) and seen.isdisjoint(fresh):
            seen |= fresh  # the common case: all new
            return
        for i, doc_id in enumerate(id_list):
            if doc_id in seen:
                problems.setdefault(i, f"duplicate_id: {doc_id}")
            else:
                seen.add(doc_id)


def _text_is_plain(table: pa.Table, text_column: str) -> bool:
    if text_column not in table.column_names:
        return True
    t = table.column(text_column).type
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t)


class _BadRows(list):
    """Rejected rows of the line reader; in fail mode the first one raises at once."""

    def __init__(self, on_bad_input: str) -> None:
        super().__init__()
        self.on_bad_input = on_bad_input

    def append(self, row: dict[str, Any]) -> None:
        if self.on_bad_input == "fail":
            raise BadInputError(f"{row['source']}: {row['reject_reason']}")
        super().append(row)


def _bad_row(text: str | None, reason: str, source: str) -> dict[str, Any]:
    return {"id": None, "text": text, "reject_step": READ_STEP, "reject_reason": reason, "source": source}


BAD_SCHEMA = pa.schema([("id", pa.string()), ("text", pa.string()), ("reject_step", pa.string()), ("reject_reason", pa.string()), ("source", pa.string())])


def _bad_table(rows: list[dict[str, Any]]) -> pa.Table | None:
    if not rows:
        return None
    for row in rows:
        if row["id"] is None:
            row["id"] = f"{row['source']}"
    return pa.Table.from_pylist(rows, schema=BAD_SCHEMA)


def _concat_bad(a: pa.Table | None, b: pa.Table | None) -> pa.Table | None:
    if a is None:
        return b
    if b is None:
        return a
    return pa.concat_tables([a, b], promote_options="permissive")


def _empty_contract() -> pa.Table:
    return pa.table({"id": pa.array([], pa.string()), "text": pa.array([], pa.string())})


def _table_from_rows(rows: list[dict[str, Any]]) -> pa.Table:
    if not rows:
        return pa.table({"__line": pa.array([], pa.int64())})
    try:
        return pa.Table.from_pylist(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # Columns whose type changes from line to line are kept as JSON text
        # rather than guessed into one type.
        keys: dict[str, None] = {}
        for row in rows:
            keys.update(dict.fromkeys(row))
        columns: dict[str, pa.Array] = {}
        for key in keys:
            values = [row.get(key) for row in rows]
            try:
                columns[key] = pa.array(values)
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                columns[key] = pa.array([v if v is None or isinstance(v, str) else json.dumps(v) for v in values], pa.string())
        return pa.table(columns)


# --------------------------------------------------------------------------- writing


class AtomicParquetWriter:
    """Writes one Parquet file under a temporary name and renames it on close.

    A killed process leaves only a ``.tmp`` file, which the next attempt
    overwrites, so readers never see half a shard.
    """

    def __init__(self, path: Path, compression: str = "zstd") -> None:
        self.path = path
        self.tmp = path.with_name(f".{path.name}.tmp")
        self.compression = compression
        self._writer: pq.ParquetWriter | None = None
        self._schema: pa.Schema | None = None
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._schema = table.schema
            self._writer = pq.ParquetWriter(self.tmp, table.schema, compression=self.compression)
        elif not table.schema.equals(self._schema):
            table = self._conform(table)
        self._writer.write_table(table)
        self.rows += table.num_rows

    def _conform(self, table: pa.Table) -> pa.Table:
        """Make a batch fit the file's schema; widen the file when it cannot."""
        assert self._schema is not None and self._writer is not None
        try:
            unified = pa.unify_schemas([self._schema, table.schema], promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise BadInputError(f"{self.path.name}: batches with incompatible schemas: {exc}") from None
        if unified.equals(self._schema):
            return _align(table, self._schema)
        # Rare: a later batch brings a new column or a wider type. Rewrite what
        # was written so far under the unified schema and carry on.
        self._writer.close()
        written = pq.read_table(self.tmp)
        self._schema = unified
        self._writer = pq.ParquetWriter(self.tmp, unified, compression=self.compression)
        self._writer.write_table(_align(written, unified))
        return _align(table, unified)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            os.replace(self.tmp, self.path)
            self._writer = None
        elif self.path.exists():
            self.path.unlink()  # an earlier attempt's output that this one did not reproduce

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self.tmp.exists():
            self.tmp.unlink()


def _align(table: pa.Table, schema: pa.Schema) -> pa.Table:
    columns = []
    for field in schema:
        if field.name in table.column_names:
            columns.append(pc.cast(table.column(field.name), field.type))
        else:
            columns.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(columns, schema=schema)


def write_json_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True, default=str))
    os.replace(tmp, path)
