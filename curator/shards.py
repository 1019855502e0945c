"""Parquet shard IO: reading inputs into the data contract, atomic writes, markers.

Reading is where bad input is met, so every reader returns two tables per
batch: rows that satisfy the contract (``id`` and ``text`` strings, ids unique
within the shard) and rows set aside with ``reject_step = "read"``, a
``reject_reason`` and ``source`` (file:line or file:row). Nothing is dropped
silently; a file that cannot be opened at all is reported by name.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import io
import json
import os
import posixpath
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson
import pyarrow.parquet as pq

from curator import storage
from curator.config import InputSpec
from curator.errors import BadInputError, ConfigError, CuratorError

JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")
#: Common Crawl archives: ``*.warc.gz`` (HTML responses) and ``*.warc.wet.gz`` (extracted text)
WARC_SUFFIXES = (".warc", ".wet", ".arc")
COMPRESSION_SUFFIXES = {".gz": "gzip", ".zst": "zstd", ".zstd": "zstd"}
READ_STEP = "read"
REJECT_COLUMNS = ("reject_step", "reject_reason")


@dataclass(frozen=True)
class WorkUnit:
    """One input file, or a range of one (a big file is split), or one previous pass's output shard; and its output name."""

    index: int
    path: str
    shard: str
    #: prefix of generated ids: the file's path relative to the inputs' common root
    id_prefix: str
    #: the original input file, when ``path`` is an earlier pass's output
    origin: str = ""
    #: which part of ``path`` this unit reads: "" the whole file; "row_groups" (Parquet row groups
    #: ``start`` to ``stop``); "bytes" (uncompressed JSONL, byte ``start`` to ``stop``, both at line
    #: starts); "lines" (compressed JSONL, lines ``start`` to ``stop``). ``stop`` -1: to the end.
    part: str = ""
    start: int = 0
    stop: int = -1
    #: row (Parquet) or line (JSONL) number of the range's first row in the file, 0-based:
    #: generated ids and sources count from it, so they are the same however a file is split
    first_row: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorkUnit:
        return cls(**data)


def discover_inputs(patterns: list[str]) -> list[str]:
    """Expand globs (and directories) into a sorted list of real file paths.

    Paths are resolved through symlinks and deduplicated, so a file reachable
    by two links (or through a symlink loop) is read once; folders are walked
    without entering a directory twice.
    """
    files: set[str] = set()
    for pattern in patterns:
        if storage.is_remote(pattern):
            remote = [m for m in storage.glob(pattern) if detect_format(m) or not pattern.endswith("/")]
            if not remote:
                raise ConfigError(f"input {pattern!r} matches no file")
            files.update(remote)
            continue
        expanded = os.path.expanduser(pattern)
        if os.path.isdir(expanded):
            # a folder means the JSONL/Parquet files under it; a glob means what it matches
            matches = [m for m in _walk_files(expanded) if detect_format(m)]
        elif "**" in expanded:
            matches = _recursive_glob(expanded)
        else:
            matches = [m for m in glob.glob(expanded) if os.path.isfile(m)]
        if not matches:
            raise ConfigError(f"input {pattern!r} matches no file")
        files.update(os.path.realpath(m) for m in matches)
    return sorted(files)


def _walk_files(folder: str) -> Iterator[str]:
    """Files under ``folder``, following symlinks but entering each real directory once."""
    seen: set[str] = set()
    for root, dirs, names in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        # like glob: hidden files and folders are not inputs
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(n for n in names if not n.startswith(".")):
            path = os.path.join(root, name)
            if os.path.isfile(path):  # False for a dangling or looping link
                yield path


def _recursive_glob(pattern: str) -> list[str]:
    """``glob(pattern, recursive=True)`` without following a symlink loop forever."""
    parts = pattern.split(os.sep)
    fixed = next(i for i, p in enumerate(parts) if glob.has_magic(p))
    base = os.sep.join(parts[:fixed]) or (os.sep if pattern.startswith(os.sep) else ".")
    regex = re.compile(_glob_regex(parts[fixed:]))
    out = []
    for path in _walk_files(base):
        if regex.fullmatch(os.path.relpath(path, base).replace(os.sep, "/")):
            out.append(path)
    return out


def _glob_regex(parts: list[str]) -> str:
    pieces = []
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "**":
            pieces.append(".*" if last else "(?:[^/]+/)*")
            continue
        body = _component_regex(part)  # like fnmatch, but '*' stays within one path component
        pieces.append(body + ("" if last else "/"))
    return "".join(pieces)


def _component_regex(part: str) -> str:
    out = []
    i = 0
    while i < len(part):
        c = part[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[" and part.find("]", i + 2) > 0:
            j = part.find("]", i + 2)
            inner = part[i + 1 : j]
            out.append("[" + ("^" + inner[1:] if inner.startswith("!") else inner.replace("\\", "\\\\")) + "]")
            i = j
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def make_units(files: list[str], unit_rows: int | None = None, unit_bytes: int | None = None, fmt: str = "auto") -> list[WorkUnit]:
    """One work unit per file, or several per big file (see :func:`split_file`).

    Without ``unit_rows``/``unit_bytes`` every file is one unit (``part-00000``);
    a split file's units are ``part-00000-0000``, ``part-00000-0001``...
    """
    units = []
    for i, f in enumerate(files):
        whole = WorkUnit(index=i, path=f, shard=f"part-{i:05d}", id_prefix=_id_prefix(f, files))
        ranges = split_file(f, unit_rows, unit_bytes, fmt) if (unit_rows or unit_bytes) else []
        if len(ranges) <= 1:
            units.append(whole)
            continue
        for k, (part, start, stop, first_row) in enumerate(ranges):
            units.append(dataclasses.replace(whole, shard=f"{whole.shard}-{k:04d}", part=part, start=start, stop=stop, first_row=first_row))
    return units


def _id_prefix(path: str, files: list[str]) -> str:
    """The file's path relative to the inputs' common folder (a URL's scheme and bucket dropped the same way)."""
    if storage.is_remote(path):
        keys = [storage.split_url(f)[1] for f in files if storage.is_remote(f)]
        root = posixpath.commonpath([posixpath.dirname(k) for k in keys])
        return posixpath.relpath(storage.split_url(path)[1], root)
    local = [f for f in files if not storage.is_remote(f)]
    return os.path.relpath(path, os.path.commonpath([os.path.dirname(f) for f in local]))


def split_file(path: str, unit_rows: int | None, unit_bytes: int | None, fmt: str = "auto") -> list[tuple[str, int, int, int]]:
    """Ranges ``(part, start, stop, first_row)`` of about ``unit_rows`` rows (else ``unit_bytes`` as stored).

    Parquet splits at row groups (from the footer: cheap). Uncompressed JSONL
    splits at line starts (one pass counting newlines); compressed JSONL by
    line numbers (one pass decompressing; each unit then decompresses the
    file up to its range, so big compressed files split into few units or
    are better stored as Parquet). A file that cannot be inspected is one
    unit: its reader reports what is wrong with it.
    """
    kind = fmt if fmt != "auto" else detect_format(path)
    try:
        size = storage.size(path)
        if kind == "parquet":
            return _split_parquet(path, size, unit_rows, unit_bytes)
        if kind == "jsonl":
            if unit_rows is None and size <= (unit_bytes or size):
                return []
            if _compression(path) is None:
                return _split_jsonl_bytes(path, size, unit_rows, unit_bytes)
            return _split_jsonl_lines(path, size, unit_rows, unit_bytes)
    except Exception:  # noqa: BLE001 - damaged or unreadable: read whole, and reported, by the reader
        return []
    return []


def _split_parquet(path: str, size: int, unit_rows: int | None, unit_bytes: int | None) -> list[tuple[str, int, int, int]]:
    with storage.open_input(path) as fh:
        meta = pq.read_metadata(fh)
    total = max(meta.num_rows, 1)
    ranges: list[tuple[str, int, int, int]] = []
    start = first = rows = 0
    for g in range(meta.num_row_groups):
        rows += meta.row_group(g).num_rows
        full = rows >= unit_rows if unit_rows else rows * size / total >= (unit_bytes or size)
        if full or g == meta.num_row_groups - 1:
            ranges.append(("row_groups", start, g + 1, first))
            start, first, rows = g + 1, first + rows, 0
    return ranges


def _split_jsonl_bytes(path: str, size: int, unit_rows: int | None, unit_bytes: int | None) -> list[tuple[str, int, int, int]]:
    """Byte ranges starting at line starts; ``first_row`` is the line number there.

    One streaming pass over the file; only the chosen boundaries are kept, so
    the driver's memory does not grow with the file.
    """
    step = unit_bytes or size
    starts: list[tuple[int, int]] = [(0, 0)]  # (byte, line) where each unit starts
    lines = offset = 0
    next_target = step  # bytes mode: the next unit starts at the first line start at or after this
    with storage.open_input(path) as fh:
        while block := fh.read(1 << 24):
            nl = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == 0x0A)
            if unit_rows:
                # the newline ending line L (1-based) is the k-th of this block where lines + k + 1 = L
                ends = np.flatnonzero((lines + np.arange(1, len(nl) + 1)) % unit_rows == 0)
                starts.extend((offset + int(nl[k]) + 1, lines + int(k) + 1) for k in ends)
            else:
                line_starts = offset + nl + 1  # where the line after each newline starts
                while True:
                    k = int(np.searchsorted(line_starts, next_target))  # the first line start at or after the target
                    if k == len(line_starts):
                        break
                    starts.append((int(line_starts[k]), lines + k + 1))
                    next_target = (int(line_starts[k]) // step + 1) * step
            lines += len(nl)
            offset += len(block)
    starts = [(b, line) for b, line in starts if b < size]
    return [("bytes", b, starts[k + 1][0] if k + 1 < len(starts) else -1, line) for k, (b, line) in enumerate(starts)]


def _split_jsonl_lines(path: str, size: int, unit_rows: int | None, unit_bytes: int | None) -> list[tuple[str, int, int, int]]:
    total = sum(block.count(b"\n") for block in _decompressed_blocks(path, []))
    per = unit_rows or -(-total // max(1, -(-size // (unit_bytes or size))))
    starts = list(range(0, max(total, 1), max(per, 1)))
    return [("lines", a, starts[k + 1] if k + 1 < len(starts) else -1, a) for k, a in enumerate(starts)]


def _decompressed_blocks(path: str, problems: list[str]) -> Iterator[bytes]:
    """The decompressed bytes of a .gz/.zst file, block by block; damage is appended to ``problems``.

    Incremental, so the bytes before a truncation or a damaged block still come out.
    """
    codec = _compression(path)
    with storage.open_input(path) as fh:
        if codec is None:
            while block := fh.read(1 << 24):
                yield block
            return
        new = _decompressor(codec)
        decoder = new()
        started = False  # inside a member/frame whose end has not been seen
        try:
            while block := fh.read(1 << 20):
                while block:
                    started = True
                    out = decoder.decompress(block)
                    if out:
                        yield out
                    if not decoder.eof:
                        break
                    # end of one gzip member / zstd frame: more may follow
                    block, started = decoder.unused_data, False
                    decoder = new()
        except Exception as exc:  # zlib.error, zstd.ZstdError: a damaged block
            problems.append(f"damaged {codec} stream: {type(exc).__name__}: {exc}")
            return
    if started:
        problems.append(f"{codec} stream ends early (truncated file)")


def detect_format(path: str) -> str | None:
    name = path.lower()
    for suffix in COMPRESSION_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith(JSONL_SUFFIXES):
        return "jsonl"
    if name.endswith(WARC_SUFFIXES):
        return "wet" if name.endswith(".wet") else "warc"
    return None


def _compression(path: str) -> str | None:
    for suffix, codec in COMPRESSION_SUFFIXES.items():
        if path.lower().endswith(suffix):
            return codec
    return None


def _decompressor(codec: str) -> Callable[[], Any]:
    """A factory of streaming decompressors (zlib's or zstd's: both have decompress(), eof, unused_data).

    One per gzip member / zstd frame: concatenated archives are read member by member.
    """
    if codec == "gzip":
        return lambda: zlib.decompressobj(wbits=31)  # gzip header
    import zstandard

    return zstandard.ZstdDecompressor().decompressobj


# --------------------------------------------------------------------------- reading

#: Input columns named like curator's own are renamed on read to ``input__<name>``
#: (``source`` is common: dolma has it), so they never collide with the columns
#: curator adds; so are ``id``/``text`` when ``id_column``/``text_column`` name others.
RESERVED_COLUMNS = ("source", "reject_step", "reject_reason")
RENAME_PREFIX = "input__"
#: JSON nested deeper than this is set aside before any parser sees it (deep
#: nesting crashes native parsers; no corpus has a reason for it).
MAX_NESTING = 64
#: internal column carrying JSONL line numbers through a batch
_LINE = "__curator_line__"
_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_BRACKETS_AND_NEWLINES = bytes(b for b in range(256) if b not in b"[]{}\n")


class InputReader:
    """Reads one work unit into contract batches; see the module docstring."""

    def __init__(self, spec: InputSpec, batch_size: int, on_bad_input: str) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive number of rows, got {batch_size!r}")
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
        self._row = unit.first_row
        reader = {"parquet": self._read_parquet, "jsonl": self._read_jsonl}.get(fmt, self._read_warc)
        try:
            for table, bad in reader(unit):
                yield self._normalise(table, bad, unit, fmt)
        except CuratorError:
            raise
        except Exception as exc:
            # A reader bug or a case nobody foresaw: name the file and what was read, never a traceback.
            self._file_problem(unit.path, f"unreadable after {self._row} rows: {type(exc).__name__}: {exc}"[:500], None)

    def read_prefix(self, unit: WorkUnit, max_bytes: int = 1 << 20) -> pa.Table:
        """The first contract rows of a file, cheaply (for validation: the columns steps will see)."""
        fmt = self.spec.format if self.spec.format != "auto" else detect_format(unit.path)
        self._seen_ids, self._row = set(), 0
        if fmt == "parquet":
            with storage.open_input(unit.path) as fh:
                schema = pq.read_schema(fh)
            table, _ = self._normalise(schema.empty_table(), None, unit, fmt)
            return table
        if fmt in ("warc", "wet"):
            for table, bad in self._read_warc(unit):
                return self._normalise(table, bad, unit, fmt)[0]
            return _empty_contract()
        data, _problem = self._decompress(unit.path, limit=max_bytes)
        data = data[: data.rfind(b"\n") + 1] if len(data) >= max_bytes else data
        for table, bad in self._read_jsonl_lines(unit, data, set()):
            return self._normalise(table, bad, unit, "jsonl")[0]
        return _empty_contract()

    # -- problems

    def _file_problem(self, source: str, problem: str, rows: int | None) -> None:
        if self.on_bad_input == "fail":
            raise BadInputError(f"{source}: {problem}")
        self.unreadable.append({"source": source, "problem": problem, "rows": rows})

    # -- parquet

    def _read_parquet(self, unit: WorkUnit) -> Iterator[tuple[pa.Table, pa.Table | None]]:
        # an object in a store is read through one file object (ranged reads), closed when done
        with contextlib.ExitStack() as stack:
            source = stack.enter_context(storage.open_input(unit.path)) if storage.is_remote(unit.path) else unit.path
            try:
                pf = pq.ParquetFile(source)
            except Exception as exc:
                if storage.size(unit.path) == 0:
                    self.warnings.append(f"{unit.path}: empty file")
                    return
                self._file_problem(unit.path, f"unreadable Parquet: {exc}", None)
                return
            if pf.metadata.num_rows == 0:
                self.warnings.append(f"{unit.path}: empty file")
            groups = range(unit.start, pf.num_row_groups if unit.stop < 0 else unit.stop) if unit.part == "row_groups" else range(pf.num_row_groups)
            # Row group by row group, so one damaged row group costs only its rows.
            for group in groups:
                rows = pf.metadata.row_group(group).num_rows
                try:
                    for batch in pf.iter_batches(batch_size=self.batch_size, row_groups=[group]):
                        yield pa.Table.from_batches([batch]), None
                except Exception as exc:
                    self._file_problem(f"{unit.path} row group {group}", f"unreadable: {exc}", rows)

    # -- warc / wet

    def _read_warc(self, unit: WorkUnit) -> Iterator[tuple[pa.Table, pa.Table | None]]:
        from curator import warc  # only runs that read web archives pay for the HTML extractor

        yield from warc.read(unit.path, self)

    # -- jsonl

    def _decompress(self, path: str, limit: int | None = None) -> tuple[bytes, str | None]:
        """The file's bytes, and what went wrong if the stream ends early or is damaged.

        Decompression is incremental so that the bytes before a truncation or
        a damaged block are still returned (and their rows read).
        """
        codec = _compression(path)
        chunks: list[bytes] = []
        size = 0
        with storage.open_input(path) as fh:
            if codec is None:
                return fh.read() if limit is None else fh.read(limit), None
            new = _decompressor(codec)
            decoder = new()
            started = False  # inside a member/frame whose end has not been seen
            try:
                while limit is None or size < limit:
                    block = fh.read(1 << 20)
                    if not block:
                        break
                    while block:
                        started = True
                        out = decoder.decompress(block)
                        chunks.append(out)
                        size += len(out)
                        if not decoder.eof:
                            break
                        # end of one gzip member / zstd frame: more may follow
                        block, started = decoder.unused_data, False
                        decoder = new()
            except Exception as exc:  # zlib.error, zstd.ZstdError: a damaged block
                return b"".join(chunks), f"damaged {codec} stream: {type(exc).__name__}: {exc}"
        if started and (limit is None or size < limit):
            return b"".join(chunks), f"{codec} stream ends early (truncated file)"
        return b"".join(chunks), None

    def _unit_bytes(self, unit: WorkUnit) -> tuple[bytes, str | None]:
        """The JSONL bytes of the unit's range (whole lines), and what went wrong reading them."""
        if unit.part == "bytes":
            with storage.open_input(unit.path) as fh:
                fh.seek(unit.start)
                return (fh.read() if unit.stop < 0 else fh.read(unit.stop - unit.start)), None
        if unit.part == "lines":
            # decompress from the start (streams cannot seek), keep lines start..stop
            problems: list[str] = []
            chunks: list[bytes] = []
            line = 0
            for block in _decompressed_blocks(unit.path, problems):
                count = block.count(b"\n")
                if line + count < unit.start:
                    line += count
                    continue
                lo = 0
                while line < unit.start:
                    lo = block.index(b"\n", lo) + 1
                    line += 1
                if unit.stop >= 0 and line + block.count(b"\n", lo) >= unit.stop:
                    hi = lo
                    while line < unit.stop:
                        hi = block.index(b"\n", hi) + 1
                        line += 1
                    chunks.append(block[lo:hi])
                    return b"".join(chunks), None
                chunks.append(block[lo:])
                line += block.count(b"\n", lo)
            return b"".join(chunks), (problems[0] if problems else None)
        return self._decompress(unit.path)

    def _read_jsonl(self, unit: WorkUnit) -> Iterator[tuple[pa.Table, pa.Table | None]]:
        try:
            data, problem = self._unit_bytes(unit)
        except OSError as exc:
            self._file_problem(unit.path, f"cannot read: {exc.strerror or exc}", None)
            return
        if problem is not None:
            yield from self._read_truncated(unit, data, problem)
            return
        if not data.strip():
            self.warnings.append(f"{unit.path}: empty file")
            return
        too_deep = _too_deep_lines(data)
        table: pa.Table | None = None
        # Arrow's parser rejects lone surrogates itself, but not bytes that are not
        # UTF-8; and it crashes on a first line `null` and reads later ones as rows.
        # (Blank lines go to the line reader too: generated ids count lines, Arrow's rows skip them.)
        if not too_deep and _lines_are_objects(data) and b"\n\n" not in data and not data.startswith(b"\n") and _is_utf8(data):
            try:
                # Fast path: Arrow's parser; it gives up on the first bad line.
                table = pajson.read_json(io.BytesIO(data), read_options=pajson.ReadOptions(block_size=1 << 24))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
                table = None
        if table is not None and _text_is_plain(table, self.spec.text_column) and not _has_nested(table, self.spec.text_column):
            for offset in range(0, max(table.num_rows, 1), self.batch_size):
                yield table.slice(offset, self.batch_size), None
            return
        yield from self._read_jsonl_lines(unit, data, too_deep)

    def _read_truncated(self, unit: WorkUnit, data: bytes, problem: str) -> Iterator[tuple[pa.Table, pa.Table | None]]:
        """Rows before the damage are read; the cut line is set aside; the file is reported with the count."""
        complete, tail = data[: data.rfind(b"\n") + 1], data[data.rfind(b"\n") + 1 :]
        if self.on_bad_input == "fail":
            rows = sum(1 for line in complete.split(b"\n") if line.strip())
            raise BadInputError(f"{unit.path}: {problem}; {rows} complete rows before it")
        rows = 0
        for table, bad in self._read_jsonl_lines(unit, complete, _too_deep_lines(complete)):
            rows += table.num_rows + (bad.num_rows if bad is not None else 0)
            yield table, bad
        if tail.strip():
            line = unit.first_row + complete.count(b"\n") + 1
            cut = _bad_row(tail.decode("utf-8", "backslashreplace"), "truncated: the stream ends inside this line", f"{unit.path}:{line}")
            yield _table_from_rows([]), _bad_table([cut])
        self.unreadable.append(
            {
                "source": unit.path,
                "problem": f"{problem}; read {rows} complete rows before it, set aside the line it ends inside; rows after it are lost",
                "rows": None,  # how many were lost is unknown
                "rows_read": rows,
            }
        )

    def _read_jsonl_lines(self, unit: WorkUnit, data: bytes, too_deep: set[int]) -> Iterator[tuple[pa.Table, pa.Table | None]]:
        """Line by line: every bad line becomes a rejected row saying why and where."""
        good: list[dict[str, Any]] = []
        bad: _BadRows = _BadRows(self.on_bad_input)
        lines = data.split(b"\n")
        for here, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            number = unit.first_row + here  # line number in the file (a unit may start mid-file)
            where = f"{unit.path}:{number}"
            if here in too_deep:
                bad.append(_bad_row(_preview(raw), f"too_deep: JSON nested deeper than {MAX_NESTING} levels", where))
                continue
            try:
                obj = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as exc:
                bad.append(_bad_row(raw.decode("utf-8", "backslashreplace"), f"invalid_utf8: byte {exc.start}", where))
                continue
            except json.JSONDecodeError as exc:
                bad.append(_bad_row(raw.decode("utf-8", "backslashreplace"), f"invalid_json: {exc.msg} at column {exc.colno}", where))
                continue
            except RecursionError:
                bad.append(_bad_row(_preview(raw), f"too_deep: JSON nested deeper than {MAX_NESTING} levels", where))
                continue
            if not isinstance(obj, dict):
                bad.append(_bad_row(raw.decode("utf-8"), f"not_an_object: {type(obj).__name__}", where))
                continue
            if b"\\u" in raw and _SURROGATE.search(raw):
                field = _surrogate_field(obj)
                if field is not None:
                    bad.append(_bad_row(raw.decode("utf-8"), f"lone_surrogate: field {field!r} has an unpaired \\uD800-\\uDFFF escape (not Unicode text)", where))
                    continue
            text = obj.get(self.spec.text_column)
            if text is not None and not isinstance(text, str):
                bad.append(_bad_row(raw.decode("utf-8"), f"text_not_string: {type(text).__name__}", where))
                continue
            for key, value in obj.items():
                if isinstance(value, (dict, list)) and key != self.spec.text_column:
                    obj[key] = json.dumps(value, ensure_ascii=False)  # see _nested_as_json
            obj[_LINE] = number
            good.append(obj)
            if len(good) >= self.batch_size:
                yield _table_from_rows(good), _bad_table(bad)
                good, bad = [], _BadRows(self.on_bad_input)
        if good or bad:
            yield _table_from_rows(good), _bad_table(bad)

    # -- the contract

    def _normalise(self, table: pa.Table, bad: pa.Table | None, unit: WorkUnit, fmt: str) -> tuple[pa.Table, pa.Table | None]:
        spec = self.spec
        n = table.num_rows
        lines = None
        if _LINE in table.column_names:
            lines = table.column(_LINE).to_pylist()
            table = table.drop_columns([_LINE])
        first_row = self._row
        self._row += n
        #: row i of ``table`` is row positions[i] of the batch as read (rows may be set aside early)
        positions = list(range(n))

        def where(i: int) -> str:
            p = positions[i]
            return f"{unit.path}:{lines[p]}" if lines else f"{unit.path}:row {first_row + p}"

        table = _plain_columns(table)
        table = _rename_reserved(table, spec)
        if fmt == "jsonl":
            table = _nested_as_json(table, spec.text_column)

        if fmt == "parquet":
            invalid = _invalid_utf8_rows(table)
            if invalid:
                if self.on_bad_input == "fail":
                    i = min(invalid)
                    raise BadInputError(f"{where(i)}: invalid_utf8: column {invalid[i]!r}")
                rows = []
                for i in sorted(invalid):
                    text = _repaired(table, spec.text_column, i)
                    rows.append(_bad_row(text, f"invalid_utf8: column {invalid[i]!r}", where(i)))
                bad = _concat_bad(bad, _bad_table(rows))
                mask = np.ones(n, dtype=bool)
                mask[sorted(invalid)] = False
                table = table.filter(pa.array(mask))
                positions = [p for p, k in zip(positions, mask) if k]
                n = table.num_rows

        if spec.text_column not in table.column_names:
            if n == 0:
                return _empty_contract(), bad
            problem = f"missing column {spec.text_column!r} (columns: {', '.join(table.column_names)}); set input.text_column"
            if self.on_bad_input == "fail":
                raise BadInputError(f"{unit.path}: {problem}")
            rows = [_bad_row(json.dumps(r, default=str), f"missing_text_column: {spec.text_column}", where(i)) for i, r in enumerate(table.to_pylist())]
            return _empty_contract(), _concat_bad(bad, _bad_table(rows))

        problems: dict[int, str] = {}
        # id: renamed, cast to string, generated where missing (stable: file + row)
        if spec.id_column in table.column_names:
            ids = table.column(spec.id_column)
            table = table.drop_columns([spec.id_column])
            ids = _ids_as_strings(ids, problems)
            if ids.null_count:
                ids = pc.coalesce(ids, self._generated_ids(unit, first_row, positions, lines))
        else:
            ids = self._generated_ids(unit, first_row, positions, lines)
        text = table.column(spec.text_column)
        table = table.drop_columns([spec.text_column])
        if pa.types.is_null(text.type):
            text = pa.nulls(n, pa.string())
        text_ok_type = pa.types.is_string(text.type) or pa.types.is_large_string(text.type)
        if text_ok_type:
            text = pc.cast(text, pa.string())
        table = table.add_column(0, "text", text if text_ok_type else pa.nulls(n, pa.string()))
        table = table.add_column(0, "id", ids)
        table = _writable(table)

        if not text_ok_type:
            if self.on_bad_input == "fail":
                raise BadInputError(f"{unit.path}: column {spec.text_column!r} has type {text.type}, expected string")
            raw_text = [None if v is None else (v if isinstance(v, str) else json.dumps(v, default=str)) for v in text.to_pylist()]
            table = table.set_column(1, "text", pa.array(raw_text, pa.string()))
            problems.update(dict.fromkeys(range(n), f"text_not_string: {text.type}"))
        elif text.null_count:
            for i in pc.indices_nonzero(pc.is_null(text)).to_pylist():
                problems.setdefault(i, "null_text")
        self._check_duplicates(table.column("id"), problems)
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
    def _generated_ids(unit: WorkUnit, first_row: int, positions: list[int], lines: list[int] | None = None) -> pa.Array:
        """``<file>:<n>``: n is the row's 0-based row (Parquet) or line (JSONL) in the file, whatever unit reads it."""
        if lines:
            return pa.array([f"{unit.id_prefix}:{lines[p] - 1}" for p in positions], pa.string())
        return pa.array([f"{unit.id_prefix}:{first_row + p}" for p in positions], pa.string())

    def _check_duplicates(self, ids: pa.Array | pa.ChunkedArray, problems: dict[int, str]) -> None:
        """Ids must be unique within a shard; later repeats are set aside."""
        seen = self._seen_ids
        id_list = ids.to_pylist()
        fresh = set(id_list)
        if len(fresh) == len(id_list) and seen.isdisjoint(fresh) and not problems:
            seen |= fresh  # the common case: all new
            return
        for i, doc_id in enumerate(id_list):
            if i in problems:
                continue
            if doc_id in seen:
                problems[i] = f"duplicate_id: {doc_id}"
            else:
                seen.add(doc_id)


def _lines_are_objects(data: bytes) -> bool:
    """Whether every non-empty line starts with ``{`` (the fast path's precondition)."""
    marks = np.frombuffer(data, dtype=np.uint8)
    starts = np.flatnonzero(marks == 0x0A) + 1
    starts = np.concatenate([[0], starts[starts < len(marks)]])
    first = marks[starts]
    return bool(np.all((first == 0x7B) | (first == 0x0A)))


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _preview(raw: bytes, limit: int = 1000) -> str:
    """A quarantined line too big or deep to keep whole: its start, marked as cut."""
    text = raw[:limit].decode("utf-8", "backslashreplace")
    return text if len(raw) <= limit else f"{text}... [{len(raw)} bytes]"


def _too_deep_lines(data: bytes) -> set[int]:
    """Line numbers (1-based) of JSON lines nested deeper than MAX_NESTING.

    Native JSON parsers recurse per level and crash (not raise) on very deep
    input, so this runs before any of them. Cheap: only brackets and newlines
    are looked at (``bytes.translate`` drops the rest in C), counting brackets
    inside strings too; lines that look deep are then measured exactly.
    """
    skeleton = data.translate(None, _BRACKETS_AND_NEWLINES)
    if len(skeleton) - skeleton.count(b"\n") <= MAX_NESTING:
        return set()
    marks = np.frombuffer(skeleton, dtype=np.uint8)
    step = np.zeros(len(marks), dtype=np.int32)
    step[(marks == ord("[")) | (marks == ord("{"))] = 1
    step[(marks == ord("]")) | (marks == ord("}"))] = -1
    depth = np.cumsum(step)
    newline = marks == ord("\n")
    line_of = np.cumsum(newline) - newline  # 0-based line of each mark
    base = np.concatenate([[0], depth[newline]])  # depth when each line starts
    relative = depth - base[line_of]
    suspects = np.unique(line_of[relative > MAX_NESTING])
    if not len(suspects):
        return set()
    lines = data.split(b"\n")
    return {int(i) + 1 for i in suspects if _nesting(lines[int(i)]) > MAX_NESTING}


def _nesting(raw: bytes) -> int:
    """The exact nesting depth of one JSON line, ignoring brackets inside strings."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def _surrogate_field(obj: dict[str, Any]) -> str | None:
    """The first top-level field holding a lone surrogate (which UTF-8 cannot encode), or None."""
    for key, value in obj.items():
        try:
            json.dumps({key: value}, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            return key.encode("utf-8", "backslashreplace").decode("utf-8")
    return None


def _has_nested(table: pa.Table, text_column: str) -> bool:
    """Objects or arrays outside the text: the line reader keeps them as the JSON they were.

    (Arrow's reader would give every object of a column the union of their
    keys, turn ints in a float list into floats, and has been seen to build
    list<struct> arrays it cannot read back.)
    """
    return any(pa.types.is_nested(f.type) for f in table.schema if f.name != text_column)


def _text_is_plain(table: pa.Table, text_column: str) -> bool:
    if text_column not in table.column_names:
        return True
    t = table.column(text_column).type
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t)


def _plain_columns(table: pa.Table) -> pa.Table:
    """Dictionary-encoded columns (pandas ``category``) decoded; string views made strings."""
    for i, field in enumerate(table.schema):
        if pa.types.is_dictionary(field.type):
            table = table.set_column(i, field.name, pc.cast(table.column(i), field.type.value_type))
        elif _is_view(field.type):
            table = table.set_column(i, field.name, pc.cast(table.column(i), pa.string() if pa.types.is_string_view(field.type) else pa.binary()))
    return table


def _is_view(t: pa.DataType) -> bool:
    return bool(getattr(pa.types, "is_string_view", lambda _: False)(t) or getattr(pa.types, "is_binary_view", lambda _: False)(t))


def _rename_reserved(table: pa.Table, spec: InputSpec) -> pa.Table:
    """Input columns that would collide with curator's own become ``input__<name>``."""
    mapped = {spec.id_column, spec.text_column}
    clash = set(RESERVED_COLUMNS) | ({"id", "text"} - mapped)
    if not clash.intersection(table.column_names):
        return table
    names = list(table.column_names)
    for i, name in enumerate(names):
        if name in clash:
            new = RENAME_PREFIX + name
            while new in names:
                new = RENAME_PREFIX + new
            names[i] = new
    return table.rename_columns(names)


def _nested_as_json(table: pa.Table, text_column: str) -> pa.Table:
    """JSONL objects and arrays are kept as JSON text, not as a struct/list type guessed per file.

    JSON declares no schema: ``"meta"`` may be an object in one file and a
    string or an object with other keys in the next, and a catalog cannot
    union a struct with a string. Text always unions; DuckDB's ``->>`` and
    ``json_extract`` read it. The line reader already encodes them from the
    parsed line, exactly as they were; this covers anything else.
    """
    for i, field in enumerate(table.schema):
        if field.name != text_column and pa.types.is_nested(field.type):
            table = table.set_column(i, field.name, _as_json_strings(table.column(i)))
    return table


def _ids_as_strings(ids: pa.ChunkedArray, problems: dict[int, str]) -> pa.ChunkedArray | pa.Array:
    """Any id column as strings: numbers cast, nested values as JSON, bytes decoded (invalid UTF-8 set aside)."""
    t = ids.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return pc.cast(ids, pa.string())
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        out: list[str | None] = []
        for i, value in enumerate(ids.to_pylist()):
            if value is None:
                out.append(None)
                continue
            try:
                out.append(value.decode("utf-8"))
            except UnicodeDecodeError as exc:
                shown = value.decode("utf-8", "backslashreplace")
                out.append(shown)
                problems[i] = f"invalid_utf8_id: byte {exc.start} of {shown!r}"
        return pa.array(out, pa.string())
    if pa.types.is_nested(t):
        return pa.array([None if v is None else json.dumps(v, default=str) for v in ids.to_pylist()], pa.string())
    try:
        return pc.cast(ids, pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return pa.array([None if v is None else str(v) for v in ids.to_pylist()], pa.string())


def _invalid_utf8_rows(table: pa.Table) -> dict[int, str]:
    """Rows holding bytes that are not UTF-8 in a string column ({row: column}).

    Parquet readers do not check; DuckDB does, and refuses the whole file.
    """
    found: dict[int, str] = {}
    for name in table.column_names:
        column = table.column(name)
        if not _has_strings(column.type):
            continue
        offset = 0
        for chunk in column.chunks:
            try:
                chunk.validate(full=True)
            except pa.ArrowInvalid:
                for i in range(len(chunk)):
                    try:
                        chunk.slice(i, 1).validate(full=True)
                    except pa.ArrowInvalid:
                        found.setdefault(offset + i, name)
            offset += len(chunk)
    return found


def _has_strings(t: pa.DataType) -> bool:
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return True
    if pa.types.is_dictionary(t):
        return _has_strings(t.value_type)
    return any(_has_strings(t.field(i).type) for i in range(t.num_fields)) if pa.types.is_nested(t) else False


def _repaired(table: pa.Table, column: str, row: int) -> str | None:
    """One string value with bytes that are not UTF-8 shown as \\xNN escapes."""
    if column not in table.column_names:
        return None
    value = table.column(column).slice(row, 1)
    t = value.type
    if not (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t)):
        return None
    raw = pc.cast(value, pa.binary() if not pa.types.is_large_string(t) else pa.large_binary()).to_pylist()[0]
    return None if raw is None else raw.decode("utf-8", "backslashreplace")


def _writable(table: pa.Table) -> pa.Table:
    """Objects Parquet or DuckDB cannot hold become JSON text.

    Parquet cannot store a struct without fields (from ``{}``), and DuckDB
    fails on, or worse corrupts its state reading, structs with a field named
    ``""`` (from ``{"": ...}``).
    """
    for i, field in enumerate(table.schema):
        if _awkward_struct(field.type):
            table = table.set_column(i, field.name, _as_json_strings(table.column(i)))
    return table


def _awkward_struct(t: pa.DataType) -> bool:
    if pa.types.is_struct(t) and (t.num_fields == 0 or any(t.field(i).name == "" for i in range(t.num_fields))):
        return True
    return pa.types.is_nested(t) and any(_awkward_struct(t.field(i).type) for i in range(t.num_fields))


def _as_json_strings(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Any column as text: strings stay, other values become JSON."""
    return pa.array(
        [None if v is None else (v if isinstance(v, str) else json.dumps(v, default=str, ensure_ascii=False)) for v in column.to_pylist()],
        pa.string(),
    )


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
        return pa.table({_LINE: pa.array([], pa.int64())})
    try:
        return pa.Table.from_pylist(rows)
    except Exception:  # noqa: BLE001 (ArrowInvalid/TypeError on mixed types, OverflowError on huge ints)
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
            except Exception:  # noqa: BLE001
                columns[key] = pa.array([v if v is None or isinstance(v, str) else json.dumps(v, ensure_ascii=False) for v in values], pa.string())
        return pa.table(columns)


# --------------------------------------------------------------------------- writing


#: a row group is written when it holds this many bytes even if it has fewer rows than
#: ``row_group_rows``: long web documents would otherwise hold 100k rows (~500 MB) in memory
ROW_GROUP_BYTES = 64 << 20


def chunk_paths(path: Path) -> list[Path]:
    """The files one writer of ``path`` left: ``path`` itself, then ``<stem>.c1.parquet``, ``<stem>.c2.parquet``...

    (``.cN`` cannot be mistaken for a shard name: shard names hold no dot.)
    """
    pattern = re.compile(re.escape(path.stem) + r"\.c(\d+)" + re.escape(path.suffix))
    extra = sorted(
        ((int(m.group(1)), p) for p in path.parent.glob(f"{glob.escape(path.stem)}.c*{path.suffix}") if (m := pattern.fullmatch(p.name))),
        key=lambda kv: kv[0],
    )
    return ([path] if path.exists() else []) + [p for _, p in extra]


class AtomicParquetWriter:
    """Writes one output shard under temporary names and renames it into place on close.

    A killed process leaves only ``.tmp`` files, which the next attempt
    overwrites, so readers never see half a shard. Rows are written in row
    groups of ``row_group_rows`` (or ROW_GROUP_BYTES, whichever comes first),
    zstd, as DuckDB reads fastest; a shard of more than ``max_rows`` rows
    continues in ``<stem>.c1.parquet``, ``<stem>.c2.parquet``... (see
    :func:`chunk_paths`), all renamed into place together on close.
    """

    def __init__(self, path: Path, compression: str = "zstd", row_group_rows: int = 100_000, max_rows: int | None = None) -> None:
        self.path = path
        self.compression = compression
        self.row_group_rows = row_group_rows
        self.max_rows = max_rows
        self._chunks: list[Path] = []  # final names of the files written, in order
        self._writer: pq.ParquetWriter | None = None
        self._schema: pa.Schema | None = None
        self._file_rows = 0
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._pending_bytes = 0
        self.rows = 0

    @property
    def tmp(self) -> Path:
        """The temporary name of the file being written."""
        return self._tmp(self._chunk_path(max(len(self._chunks) - 1, 0)))

    def _chunk_path(self, k: int) -> Path:
        return self.path if k == 0 else self.path.with_name(f"{self.path.stem}.c{k}{self.path.suffix}")

    @staticmethod
    def _tmp(path: Path) -> Path:
        return path.with_name(f".{path.name}.tmp")

    def write(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        if self._writer is None:
            self._open(table.schema)  # at once, so a shard being written shows as its .tmp file
        self._pending.append(table)
        self._pending_rows += table.num_rows
        self._pending_bytes += table.nbytes
        self.rows += table.num_rows
        if self._pending_rows >= self.row_group_rows or self._pending_bytes >= ROW_GROUP_BYTES:
            self._flush(final=False)

    def _open(self, schema: pa.Schema) -> None:
        path = self._chunk_path(len(self._chunks))
        path.parent.mkdir(parents=True, exist_ok=True)
        self._chunks.append(path)
        self._schema = schema
        self._file_rows = 0
        self._writer = pq.ParquetWriter(self._tmp(path), schema, compression=self.compression)

    def _flush(self, final: bool) -> None:
        """Write whole row groups from the pending rows (all of them when ``final``)."""
        if not self._pending:
            return
        pending = self._pending
        table = pending[0] if len(pending) == 1 else pa.concat_tables([_align(t, self._common(pending)) for t in pending])
        rows = table.num_rows
        if not final and self._pending_bytes < ROW_GROUP_BYTES:
            rows -= rows % self.row_group_rows  # keep the remainder for the next group
        done = table.slice(0, rows)
        rest = table.slice(rows)
        self._pending = [rest] if rest.num_rows else []
        self._pending_rows, self._pending_bytes = rest.num_rows, rest.nbytes if rest.num_rows else 0
        offset = 0
        while offset < done.num_rows:
            if self._writer is None or (self.max_rows is not None and self._file_rows >= self.max_rows):
                self._close_file()
                self._open(done.schema)
            room = done.num_rows - offset if self.max_rows is None else min(done.num_rows - offset, self.max_rows - self._file_rows)
            part = done.slice(offset, room)
            if not part.schema.equals(self._schema):
                part = self._conform(part)
            assert self._writer is not None
            self._writer.write_table(part, row_group_size=self.row_group_rows)
            self._file_rows += room
            offset += room

    def _common(self, tables: list[pa.Table]) -> pa.Schema:
        schema = tables[0].schema
        for t in tables[1:]:
            if not t.schema.equals(schema):
                schema = _unify(schema, t.schema)
        return schema

    def _close_file(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _conform(self, table: pa.Table) -> pa.Table:
        """Make a batch fit the file's schema; widen the file when it cannot.

        A column whose type changes between batches (``"year": 2020`` in one,
        ``"2020"`` in a later one) becomes text in the whole file, nested values
        as JSON: nothing is guessed and no row is lost.
        """
        assert self._schema is not None and self._writer is not None
        unified = _unify(self._schema, table.schema)
        if unified.equals(self._schema):
            return _align(table, self._schema)
        # Rare: a later batch brings a new column or a wider type. Rewrite what
        # was written so far under the unified schema and carry on.
        tmp = self.tmp
        self._writer.close()
        written = pq.read_table(tmp)
        self._schema = unified
        self._writer = pq.ParquetWriter(tmp, unified, compression=self.compression)
        if written.num_rows:
            self._writer.write_table(_align(written, unified), row_group_size=self.row_group_rows)
        return _align(table, unified)

    def close(self) -> None:
        self._flush(final=True)
        self._close_file()
        for path in self._chunks:
            os.replace(self._tmp(path), path)
        # an earlier attempt's output that this one did not reproduce (fewer rows, or none)
        for stale in chunk_paths(self.path)[len(self._chunks) :] if self._chunks else chunk_paths(self.path):
            stale.unlink()

    def abort(self) -> None:
        self._close_file()
        self._pending = []
        for path in self._chunks:
            self._tmp(path).unlink(missing_ok=True)


def _unify(a: pa.Schema, b: pa.Schema) -> pa.Schema:
    """The schema both fit; a column whose types cannot be reconciled becomes a string."""
    try:
        return pa.unify_schemas([a, b], promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        pass
    fields = []
    for name in list(a.names) + [n for n in b.names if n not in a.names]:
        fa = a.field(name) if name in a.names else None
        fb = b.field(name) if name in b.names else None
        if fa is None or fb is None:
            fields.append(fa or fb)
            continue
        try:
            fields.append(pa.unify_schemas([pa.schema([fa]), pa.schema([fb])], promote_options="permissive").field(0))
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            fields.append(pa.field(name, pa.string()))
    return pa.schema(fields)


def _align(table: pa.Table, schema: pa.Schema) -> pa.Table:
    columns = []
    for field in schema:
        if field.name not in table.column_names:
            columns.append(pa.nulls(table.num_rows, field.type))
            continue
        column = table.column(field.name)
        try:
            columns.append(pc.cast(column, field.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            if not pa.types.is_string(field.type):
                raise
            columns.append(_as_json_strings(column))  # a nested value where text is expected
    return pa.Table.from_arrays(columns, schema=schema)


def write_json_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True, default=str))
    os.replace(tmp, path)


def iter_texts(patterns: list[str], text_column: str = "text", batch_size: int = 10_000) -> Iterator[str]:
    """Every readable text in files matching ``patterns`` (reference text, seed files), bad rows skipped."""
    reader = InputReader(InputSpec(text_column=text_column), batch_size=batch_size, on_bad_input="quarantine")
    for unit in make_units(discover_inputs(patterns)):
        for good, _bad in reader.read(unit):
            yield from good.column("text").to_pylist()
