"""Common Crawl WARC and WET input: records in, contract batches out.

* **WARC** (``*.warc``, ``*.warc.gz``, ``*.warc.zst``): each HTTP ``response``
  record is one document. Its body is un-chunked and decompressed if the
  server's encoding was kept, decoded (HTTP charset, else detected) and
  reduced to its main text with Resiliparse
  (``extract_plain_text(main_content=True)``, the extractor DCLM uses; 13x
  faster per page than trafilatura, which FineWeb uses: bench/bench_warc.py).
  ``text/plain`` responses are taken as they are.
* **WET** (``*.warc.wet.gz``): each ``conversion`` record already holds the
  text Common Crawl extracted; it is decoded as UTF-8.

Every document keeps ``url`` (WARC-Target-URI), ``warc_record_id``, ``date``
(WARC-Date, UTC), ``content_type`` (the identified payload type, else the HTTP
one) and ``language`` (WARC-Identified-Content-Language, WET only; null
elsewhere). Its id is the WARC record id without ``<urn:uuid:`` ... ``>``.

Nothing is lost without a reason: a response whose text cannot be extracted
(not HTML, an HTTP error status, an undecodable body, no text found) becomes a
rejected row with ``reject_step = "read"``, its reason and its byte offset in
the decompressed stream; other record types (requests, metadata, warcinfo, revisits) are not
documents and are counted in the shard's warnings. A file that ends early (a
broken download) or is damaged keeps every complete record before the break;
the record it ends inside is set aside as ``truncated`` and the file is
reported in the run's unreadable list.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections import Counter
from collections.abc import Iterator
from datetime import timezone
from typing import IO, TYPE_CHECKING, Any

import pyarrow as pa

from curator import storage
from curator.errors import BadInputError, ConfigError
from curator.shards import _bad_row, _bad_table, _BadRows, detect_format

if TYPE_CHECKING:
    from curator.shards import InputReader

try:  # the extras are checked when a WARC is first read, with what to install
    import brotli  # a dependency of fastwarc
    from fastwarc.warc import ArchiveIterator
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding
    from resiliparse.parse.html import HTMLTree

    _HAVE_EXTRA = True
except ImportError:  # pragma: no cover - exercised only without the extra
    _HAVE_EXTRA = False

HTML_TYPES = ("text/html", "application/xhtml+xml", "application/xml", "text/xml")
TEXT_TYPES = ("text/plain",)
_DOC_COLUMNS = ("url", "warc_record_id", "date", "content_type", "language")
_DATE = pa.timestamp("s", tz="UTC")


def read(path: str, reader: InputReader, max_rows: int | None = None) -> Iterator[tuple[pa.Table, pa.Table | None]]:
    """Yield ``(documents, set_aside)`` batches of ``reader.batch_size`` records from one WARC/WET file.

    ``max_rows`` stops early (a cheap look at the first documents, for validation).
    """
    if not _HAVE_EXTRA:
        raise ConfigError("reading WARC/WET files needs the 'warc' extra: pip install 'corpus-curator[warc]' (fastwarc, resiliparse)")
    wet = (reader.spec.format if reader.spec.format != "auto" else detect_format(path)) == "wet"
    try:
        stream = _Stream(path)
    except OSError as exc:
        reader._file_problem(path, f"cannot read: {exc.strerror or exc}", None)
        return
    id_column, text_column = reader.spec.id_column, reader.spec.text_column
    good: list[dict[str, Any]] = []
    bad = _BadRows(reader.on_bad_input)
    skipped: Counter[str] = Counter()
    documents = 0
    broken: str | None = None  # the record the stream ends inside
    cut_tail = False  # the stream ends inside the headers of a record that is no document
    damaged: str | None = None  # FastWARC's complaint about a record it cannot parse
    last = -1  # offset of the last record read
    with stream:
        records = iter(ArchiveIterator(stream, parse_http=False, stream_detect=False, auto_decode="none"))
        while True:
            try:
                record = next(records)
            except StopIteration:
                break
            except OSError as exc:
                # A damaged record header: nothing after it can be framed. The batch read so far is kept.
                after = f"after the record at {'uncompressed ' if stream.compressed else ''}byte {last}" if last >= 0 else "at the start"
                damaged = f"a damaged WARC record {after} ({exc})"
                break
            last = record.stream_pos
            kind = str(record.record_type)
            # FastWARC hands over a record whose headers a cut file ends inside: they lack a matching Content-Length
            declared = record.headers.get("Content-Length") or ""
            cut_headers = not declared.isdigit() or int(declared) != record.content_length
            if kind != ("conversion" if wet else "response"):
                cut_tail |= cut_headers
                if not cut_headers:
                    skipped[kind] += 1
                continue
            documents += 1
            # a byte offset in the decompressed stream (``zcat FILE | tail -c +OFFSET+1`` finds it)
            where = f"{path}:{'uncompressed ' if stream.compressed else ''}byte {record.stream_pos}"
            row, reason, raw = _document(record, wet, cut_headers)
            if row.pop("_short", False):  # fewer bytes than its Content-Length: the file is cut here
                reason, raw = "truncated: the file ends inside this record", raw if raw is not None else row["text"]
            if reason is None:
                row[id_column] = row.pop("id")
                row[text_column] = row.pop("text")
                good.append(row)
            else:
                if reason.startswith("truncated"):
                    broken = where
                bad.append({**_bad_row(raw, reason, where), "id": row["id"]})
            if len(good) + len(bad) >= reader.batch_size:
                yield _documents(good, id_column, text_column), _bad_table(bad)
                good, bad = [], _BadRows(reader.on_bad_input)
            if max_rows is not None and documents >= max_rows:
                break
    if good or bad:
        yield _documents(good, id_column, text_column), _bad_table(bad)
    if skipped:
        kinds = ", ".join(f"{kind}: {n}" for kind, n in sorted(skipped.items()))
        reader.warnings.append(f"{path}: {sum(skipped.values())} records that are not {'conversions' if wet else 'responses'} skipped ({kinds})")
    problem = stream.problem or damaged or ("the file ends inside a record (truncated file)" if broken or cut_tail else None)
    if problem is not None and (max_rows is None or documents < max_rows):
        complete = documents - (1 if broken else 0)
        cut = f"; the record at {broken.rsplit(':', 1)[1]} is cut and set aside" if broken else ""
        if reader.on_bad_input == "fail":
            raise BadInputError(f"{path}: {problem}; {complete} complete records before it")
        # like a cut JSONL file: how many records were lost is unknown
        reader.unreadable.append({"source": path, "problem": f"{problem}; read {complete} complete records before it{cut}; records after it are lost", "rows": None, "rows_read": complete})


def _document(record: Any, wet: bool, cut_headers: bool = False) -> tuple[dict[str, Any], str | None, str | None]:
    """One record as a document row, or the reason it is set aside (and its text, to keep)."""
    headers = record.headers
    record_id = headers.get("WARC-Record-ID") or ""
    date = record.record_date
    row: dict[str, Any] = {
        "id": record_id.strip("<>").removeprefix("urn:uuid:") or None,
        "text": None,
        "url": headers.get("WARC-Target-URI"),
        "warc_record_id": record_id or None,
        "date": date.astimezone(timezone.utc).replace(tzinfo=None) if date is not None else None,
        "content_type": headers.get("WARC-Identified-Payload-Type") or (headers.get("Content-Type") if wet else None),
        "language": headers.get("WARC-Identified-Content-Language"),
    }
    if cut_headers:
        row["_short"] = True
        return row, None, None
    if wet:
        payload, short = _payload(record)
        row["_short"] = short
        try:
            row["text"] = payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            return row, f"invalid_utf8: byte {exc.start}", payload.decode("utf-8", "backslashreplace")
        if not row["text"].strip():
            return row, "no_text: the record is empty", row["text"]
        return row, None, None

    try:
        record.parse_http(auto_decode="none")
    except OSError as exc:
        payload, short = _payload(record)
        row["_short"] = short
        return row, f"bad_http: {exc}"[:300], payload.decode("utf-8", "backslashreplace")
    payload, short = _payload(record)
    row["_short"] = short
    http = record.http_headers
    mime = (record.http_content_type or "").lower() or None
    row["content_type"] = row["content_type"] or mime
    status = getattr(http, "status_code", None)
    if status is not None and not 200 <= status < 300:
        return row, f"http_status: {status}", _as_text(payload, record.http_charset)
    # Common Crawl stores bodies decoded; other crawlers (wget, Heritrix) keep what the server sent
    transfer = (http.get("Transfer-Encoding") or "").lower() if http is not None else ""
    encoding = (http.get("Content-Encoding") or "").lower().strip() if http is not None else ""
    try:
        if "chunked" in transfer:
            payload = _dechunk(payload)
        if encoding and encoding != "identity":
            payload = _decode(payload, encoding)
    except (ValueError, zlib.error, brotli.error) as exc:
        return row, f"content_encoding: cannot decode the {transfer or encoding!r} body: {exc}"[:300], None
    kind = (row["content_type"] or "text/html").lower()
    if kind.startswith(TEXT_TYPES):
        text = _as_text(payload, record.http_charset)
        if not text.strip():
            return row, "no_text: empty body", text
        row["text"] = text
        return row, None, None
    if not kind.startswith(HTML_TYPES):
        # images, PDFs, ...: not text this reader extracts; the offset says where the body is
        return row, f"not_html: {kind}", None
    try:
        html = _as_text(payload, record.http_charset)
        text = extract_plain_text(HTMLTree.parse(html), main_content=True)
    except Exception as exc:  # noqa: BLE001 (an extractor failure costs this record, not the file)
        return row, f"extract_failed: {type(exc).__name__}: {exc}"[:300], payload.decode("utf-8", "backslashreplace")
    if not text.strip():
        return row, "no_text: the extractor found no main text in the HTML", html
    row["text"] = text
    return row, None, None


def _dechunk(body: bytes) -> bytes:
    """An HTTP/1.1 ``Transfer-Encoding: chunked`` body, joined."""
    out: list[bytes] = []
    at = 0
    while True:
        end = body.find(b"\r\n", at)
        if end < 0:
            raise ValueError("chunked body ends inside a chunk size line")
        size = int(body[at:end].split(b";", 1)[0].strip() or b"x", 16)  # ValueError when not hex
        if size == 0:
            return b"".join(out)
        start = end + 2
        if start + size > len(body):
            raise ValueError("chunked body ends inside a chunk")
        out.append(body[start : start + size])
        at = start + size + 2


def _decode(body: bytes, encoding: str) -> bytes:
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompress(body, wbits=47)  # gzip or zlib header, whichever it is
    if encoding == "deflate":
        try:
            return zlib.decompress(body)
        except zlib.error:
            return zlib.decompress(body, wbits=-15)  # raw deflate, as some servers send it
    if encoding == "br":
        return brotli.decompress(body)
    raise ValueError(f"unknown content encoding {encoding!r}")


def _payload(record: Any) -> tuple[bytes, bool]:
    """The rest of the record, and whether it is shorter than its header says (a cut file)."""
    expected = record.content_length
    payload = record.reader.read()
    return payload, len(payload) < expected


def _as_text(payload: bytes, charset: str | None) -> str:
    # bytes_to_str falls back to UTF-8 and cp1252 when the declared charset is wrong
    # (detect_encoding may return None: then UTF-8, with the same fallbacks)
    return bytes_to_str(payload, charset or detect_encoding(payload) or "utf-8")


def _documents(rows: list[dict[str, Any]], id_column: str, text_column: str) -> pa.Table:
    columns = {
        id_column: pa.array([r[id_column] for r in rows], pa.string()),
        text_column: pa.array([r[text_column] for r in rows], pa.string()),
    }
    for name in _DOC_COLUMNS:
        columns[name] = pa.array([r[name] for r in rows], _DATE if name == "date" else pa.string())
    return pa.table(columns)


class _Stream(io.RawIOBase):
    """The file's decompressed bytes; a stream that ends early or is damaged ends quietly.

    FastWARC discards its buffer when the stream raises, which would lose the
    complete records read just before a cut. Ending the stream instead keeps
    them; ``problem`` says what happened.
    """

    def __init__(self, path: str) -> None:
        self._raw: IO[bytes] = storage.open_input(path)  # local or object store; closed in close()
        name = path.lower()
        self._inner: IO[bytes] | gzip.GzipFile
        if name.endswith(".gz"):
            self._inner, self._codec = gzip.GzipFile(fileobj=self._raw), "gzip"
        elif name.endswith((".zst", ".zstd")):
            import zstandard

            self._inner, self._codec = zstandard.ZstdDecompressor().stream_reader(self._raw, read_across_frames=True), "zstd"
        else:
            self._inner, self._codec = self._raw, ""
        self.problem: str | None = None
        self.compressed = bool(self._codec)
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        # FastWARC asks where it is (seek(0, SEEK_CUR)) to report record offsets
        if (offset, whence) in ((0, io.SEEK_CUR), (self._pos, io.SEEK_SET)):
            return self._pos
        raise io.UnsupportedOperation("seek")

    def read(self, size: int = -1) -> bytes:
        if self.problem is not None:
            return b""
        try:
            # read1: one step of decompression, so bytes decoded before a cut are returned, not dropped with it
            data = self._inner.read1(size) if isinstance(self._inner, gzip.GzipFile) else self._inner.read(size)
            self._pos += len(data)
            return data
        except EOFError:
            self.problem = f"{self._codec} stream ends early (truncated file)"
        except (zlib.error, gzip.BadGzipFile, OSError) as exc:
            self.problem = f"damaged {self._codec or 'file'} stream: {type(exc).__name__}: {exc}"
        except Exception as exc:  # noqa: BLE001 (zstd.ZstdError)
            self.problem = f"damaged {self._codec} stream: {type(exc).__name__}: {exc}"
        return b""

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if self._inner is not self._raw:
            self._inner.close()
        self._raw.close()
        super().close()
