"""WARC and WET input: real archives written with warcio from real web pages."""

from __future__ import annotations

import gzip
import html
import io
from datetime import datetime, timezone

import duckdb
import pyarrow.parquet as pq
import pytest
from conftest import SHARED_DATA, pipeline_file, read_jsonl

from curator.config import InputSpec, load_pipeline
from curator.errors import BadInputError
from curator.runner import run_pipeline
from curator.shards import InputReader, make_units

pytest.importorskip("fastwarc")
pytest.importorskip("resiliparse")
warcio = pytest.importorskip("warcio")
from warcio.statusandheaders import StatusAndHeaders  # noqa: E402
from warcio.warcwriter import WARCWriter  # noqa: E402

try:  # the moto server fixtures of the object-store tests
    from test_s3 import s3, s3_server  # noqa: F401

    HAVE_S3 = True
except (ImportError, pytest.skip.Exception):
    HAVE_S3 = False

WEBORG = SHARED_DATA / "web" / "weborganizer_examples.jsonl.gz"
N_PAGES = 30


@pytest.fixture(scope="module")
def pages():
    """Real pages (WebOrganizer: Common Crawl text from the DCLM pool) with at least two paragraphs."""
    rows = [r for r in read_jsonl(WEBORG, limit=200) if r["text"].count("\n") >= 2 and len(r["text"]) > 400]
    return rows[:N_PAGES]


def as_html(text: str) -> str:
    """The page as a server would send it: navigation and footer around the paragraphs."""
    paragraphs = "".join(f"<p>{html.escape(p)}</p>\n" for p in text.split("\n") if p.strip())
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>page</title>"
        "<script>var zzscriptzz = 1;</script></head><body>"
        "<nav><a href='/'>zznavzz Home</a> | <a href='/about'>About us</a></nav>"
        f"<main><article>{paragraphs}</article></main>"
        "<footer>zzfooterzz Copyright 2024</footer></body></html>"
    )


def response(writer: WARCWriter, url: str, body: bytes, content_type: str = "text/html; charset=utf-8", status: str = "200 OK"):
    http = StatusAndHeaders(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))], protocol="HTTP/1.1")
    record = writer.create_warc_record(url, "response", payload=io.BytesIO(body), http_headers=http, warc_headers_dict={"WARC-Date": "2024-03-01T12:34:56Z"})
    writer.write_record(record)
    return record.rec_headers.get_header("WARC-Record-ID")


def write_warc(path, pages, *, compress=True, extras=True):
    """A crawl as Common Crawl writes it: warcinfo, then request/response(/metadata) per page.

    Returns ({record id: page} for the HTML pages, {record id: expected reason} for the rest).
    """
    ids, odd = {}, {}
    with open(path, "wb") as fh:
        writer = WARCWriter(fh, gzip=compress)
        writer.write_record(writer.create_warcinfo_record(path.name, {"software": "curator test", "format": "WARC File Format 1.1"}))
        for page in pages:
            writer.write_record(writer.create_warc_record(page["url"], "request", payload=io.BytesIO(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")))
            ids[response(writer, page["url"], as_html(page["text"]).encode("utf-8"))] = page
            writer.write_record(writer.create_warc_record(page["url"], "metadata", payload=io.BytesIO(b"fetchTimeMs: 120\r\n")))
        if extras:
            # a page in cp1252, declared in its Content-Type: decoded by its charset
            latin = "<html><body><article><p>Café crème à la française, déjà vu, naïve résumé: " + "très bien. " * 20 + "</p></article></body></html>"
            ids[response(writer, "http://latin.example/", latin.encode("cp1252"), "text/html; charset=windows-1252")] = {"text": "Café crème à la française, déjà vu"}
            odd[response(writer, "http://pdf.example/x.pdf", b"%PDF-1.4 binary\x00\x01\x02", "application/pdf")] = "not_html: application/pdf"
            odd[response(writer, "http://gone.example/", b"<html><body><p>Not Found</p></body></html>", status="404 Not Found")] = "http_status: 404"
            odd[response(writer, "http://empty.example/", b"<html><head><script>x()</script></head><body></body></html>")] = "no_text"
    return ids, odd


def stripped(record_id: str) -> str:
    return record_id.strip("<>").removeprefix("urn:uuid:")


def read_all(path, on_bad_input="quarantine", batch_size=7, fmt="auto"):
    reader = InputReader(InputSpec(format=fmt), batch_size, on_bad_input)
    good, bad = [], []
    for table, rejected in reader.read(make_units([str(path)])[0]):
        assert table.num_rows + (rejected.num_rows if rejected is not None else 0) <= batch_size
        good += table.to_pylist()
        bad += rejected.to_pylist() if rejected is not None else []
    return good, bad, reader


def test_warc_pages_become_documents_with_url_record_id_and_date(tmp_path, pages):
    path = tmp_path / "crawl" / "CC-MAIN-test-00000.warc.gz"
    path.parent.mkdir()
    ids, odd = write_warc(path, pages)
    good, bad, reader = read_all(path)

    assert len(good) + len(bad) == len(ids) + len(odd)  # every response is a row, kept or set aside
    by_id = {row["id"]: row for row in good}
    for record_id, page in ids.items():
        row = by_id.pop(stripped(record_id))
        assert row["warc_record_id"] == record_id
        assert row["date"] == datetime(2024, 3, 1, 12, 34, 56, tzinfo=timezone.utc)
        assert row["content_type"] == "text/html"
        if "url" in page:
            assert row["url"] == page["url"]
            # the main text is kept paragraph by paragraph; script, navigation and footer are not
            paragraphs = [p.strip() for p in page["text"].split("\n") if p.strip()]
            assert paragraphs[0][:80] in row["text"] and paragraphs[-1][:80] in row["text"]
            assert "zzscriptzz" not in row["text"] and "zznavzz" not in row["text"] and "zzfooterzz" not in row["text"]
        else:
            assert page["text"] in row["text"]
    assert not by_id
    reasons = {row["id"]: row["reject_reason"] for row in bad}
    assert {i: r.split(":")[0] if r.startswith("no_text") else r for i, r in reasons.items()} == {stripped(r): reason for r, reason in odd.items()}
    assert all(row["reject_step"] == "read" and ":uncompressed byte " in row["source"] for row in bad)
    assert reader.warnings == [f"{path}: {1 + 2 * len(pages)} records that are not responses skipped (metadata: {len(pages)}, request: {len(pages)}, warcinfo: 1)"]
    assert reader.unreadable == []


def test_wet_file_keeps_common_crawls_text_and_language(tmp_path, pages):
    path = tmp_path / "CC-MAIN-test-00000.warc.wet.gz"
    ids = {}
    with open(path, "wb") as fh:
        writer = WARCWriter(fh, gzip=True)
        writer.write_record(writer.create_warcinfo_record(path.name, {"software": "curator test"}))
        for page in pages:
            record = writer.create_warc_record(
                page["url"],
                "conversion",
                payload=io.BytesIO(page["text"].encode("utf-8")),
                warc_headers_dict={"Content-Type": "text/plain", "WARC-Identified-Content-Language": "eng", "WARC-Date": "2024-03-01T12:34:56Z"},
            )
            writer.write_record(record)
            ids[record.rec_headers.get_header("WARC-Record-ID")] = page
    good, bad, reader = read_all(path)
    assert bad == [] and len(good) == len(pages)
    for row in good:
        page = ids[row["warc_record_id"]]
        assert row["id"] == stripped(row["warc_record_id"])
        assert row["text"] == page["text"] and row["url"] == page["url"]
        assert row["language"] == "eng" and row["content_type"] == "text/plain"
    assert reader.warnings == [f"{path}: 1 records that are not conversions skipped (warcinfo: 1)"]


@pytest.mark.parametrize("compress", [True, False], ids=["warc.gz", "warc"])
def test_a_cut_warc_loses_only_its_broken_tail(tmp_path, pages, compress):
    full = tmp_path / ("full.warc.gz" if compress else "full.warc")
    ids, _ = write_warc(full, pages, compress=compress, extras=False)
    complete, _, _ = read_all(full)
    order = [row["id"] for row in complete]
    texts = {row["id"]: row["text"] for row in complete}
    data = full.read_bytes()
    cuts = [int(len(data) * f) for f in (0.1, 0.23, 0.37, 0.5, 0.66, 0.81, 0.95)]
    if not compress:  # inside the WARC headers and the HTTP headers of a response
        middle = data.index(b"WARC-Type: response", len(data) // 2)
        cuts += [middle + 30, data.index(b"HTTP/1.1 200", middle) + 20]
    for at in cuts:
        cut = tmp_path / f"cut-{at}{'.warc.gz' if compress else '.warc'}"
        cut.write_bytes(data[:at])
        good, bad, reader = read_all(cut)
        # every record before the cut is read, in order, with the same text
        assert [row["id"] for row in good] == order[: len(good)] and len(good) > 0
        assert all(row["text"] == texts[row["id"]] for row in good)
        # at most the record the file ends inside is set aside, and it says so
        assert [row["reject_reason"] for row in bad] in ([], ["truncated: the file ends inside this record"])
        if bad:  # named by its record id, or by where it is when the cut comes before the id
            assert bad[0]["id"] in (order[len(good)], bad[0]["source"])
        [problem] = reader.unreadable
        assert problem["source"] == str(cut) and problem["rows_read"] == len(good)
        assert "records after it are lost" in problem["problem"]


def test_run_over_a_warc_balances_and_fails_loudly_when_asked(tmp_path, pages, registry):
    path = tmp_path / "in" / "crawl.warc.gz"
    path.parent.mkdir()
    ids, odd = write_warc(path, pages[:10])
    pipe = load_pipeline(pipeline_file(tmp_path, "steps:\n  - step: text_stats\n"), registry)
    stats = run_pipeline(pipe, tmp_path / "run", inputs=[str(path)], progress=False)
    assert stats["balanced"] and stats["kept"] == len(ids) and stats["input"] == len(ids) + len(odd)
    con = duckdb.connect(str(tmp_path / "run" / "curator.duckdb"), read_only=True)
    rows = con.execute("SELECT url, warc_record_id, text_stats__words > 0 FROM kept ORDER BY url").fetchall()
    assert {r[1] for r in rows} == set(ids) and all(r[2] for r in rows)
    shard = next((tmp_path / "run").glob("pass-*/rejected/*.parquet"))
    assert sorted(pq.read_table(shard).column("reject_reason").to_pylist()) == sorted(r if r != "no_text" else "no_text: the extractor found no main text in the HTML" for r in odd.values())

    with pytest.raises(BadInputError, match=r"crawl\.warc\.gz:uncompressed byte \d+: not_html: application/pdf"):
        read_all(path, on_bad_input="fail")
    cut = tmp_path / "cut.warc.gz"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(BadInputError, match=r"cut\.warc\.gz"):
        read_all(cut, on_bad_input="fail")


def test_gzip_member_per_record_is_what_is_read(tmp_path, pages):
    """Common Crawl compresses each record as its own gzip member: the reader goes across members."""
    path = tmp_path / "one.warc.gz"
    write_warc(path, pages[:3], extras=False)
    raw = gzip.decompress(path.read_bytes())
    assert raw.count(b"WARC/1") == 1 + 3 * 3
    good, bad, _ = read_all(path)
    assert len(good) == 3 and bad == []


def test_zstd_warc_and_forced_format(tmp_path, pages):
    """A .warc.zst reads like a .warc.gz; input.format names the reader for other file names."""
    import zstandard

    plain = tmp_path / "crawl.warc"
    ids, _ = write_warc(plain, pages[:4], compress=False, extras=False)
    zst = tmp_path / "crawl.warc.zst"
    zst.write_bytes(zstandard.ZstdCompressor().compress(plain.read_bytes()))
    good, bad, reader = read_all(zst)
    assert sorted(row["warc_record_id"] for row in good) == sorted(ids) and bad == [] and reader.unreadable == []
    odd_name = tmp_path / "crawl.dat"
    odd_name.write_bytes(plain.read_bytes())
    good, _, _ = read_all(odd_name, fmt="warc")
    assert len(good) == 4


def test_curator_run_reads_a_folder_of_warc_and_wet_files(tmp_path, pages):
    """The console script, a folder holding a WARC and a WET file: both read, the funnel balances."""
    import json

    from conftest import curator_cli

    folder = tmp_path / "crawl"
    folder.mkdir()
    ids, odd = write_warc(folder / "a.warc.gz", pages[:5])
    with open(folder / "a.warc.wet.gz", "wb") as fh:
        writer = WARCWriter(fh, gzip=True)
        for page in pages[5:8]:
            writer.write_record(writer.create_warc_record(page["url"], "conversion", payload=io.BytesIO(page["text"].encode()), warc_headers_dict={"Content-Type": "text/plain"}))
    pipeline = pipeline_file(tmp_path, "steps:\n  - step: text_stats\n")
    curator_cli("run", str(pipeline), "--input", str(folder), "--output", str(tmp_path / "run"), "--quiet", "--in-process")
    stats = json.loads(curator_cli("stats", "--run", str(tmp_path / "run"), "--json").stdout)
    assert stats["input"] == len(ids) + len(odd) + 3
    assert stats["kept"] == len(ids) + 3


def test_bodies_kept_as_the_server_sent_them_are_decoded(tmp_path, pages):
    """wget/Heritrix WARCs keep chunked and compressed bodies: they are decoded before extraction."""
    import zlib

    import brotli

    text = pages[0]["text"]
    body = as_html(text).encode()
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(body[i : i + 700]), body[i : i + 700]) for i in range(0, len(body), 700)) + b"0\r\n\r\n"
    gz = zlib.compressobj(wbits=31)
    bodies = {
        "chunked": (chunked, [("Transfer-Encoding", "chunked")]),
        "gzip": (gz.compress(body) + gz.flush(), [("Content-Encoding", "gzip")]),
        "br": (brotli.compress(body), [("Content-Encoding", "br")]),
        "broken": (b"zz\r\nnot hex", [("Transfer-Encoding", "chunked")]),
    }
    path = tmp_path / "served.warc.gz"
    ids = {}
    with open(path, "wb") as fh:
        writer = WARCWriter(fh, gzip=True)
        for name, (payload, headers) in bodies.items():
            http = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8"), *headers], protocol="HTTP/1.1")
            record = writer.create_warc_record(f"http://{name}.example/", "response", payload=io.BytesIO(payload), http_headers=http)
            writer.write_record(record)
            ids[stripped(record.rec_headers.get_header("WARC-Record-ID"))] = name
    good, bad, _ = read_all(path)
    first_paragraph = next(p for p in text.split("\n") if p.strip()).strip()
    assert sorted(ids[row["id"]] for row in good) == ["br", "chunked", "gzip"]
    assert all(first_paragraph[:80] in row["text"] for row in good)
    [broken] = bad
    assert ids[broken["id"]] == "broken" and broken["reject_reason"].startswith("content_encoding: cannot decode the 'chunked' body")


def test_a_damaged_record_header_keeps_the_records_before_it(tmp_path, pages):
    path = tmp_path / "damaged.warc"
    write_warc(path, pages[:8], compress=False, extras=False)
    complete, _, _ = read_all(tmp_path / "damaged.warc")
    data = path.read_bytes()
    middle = data.rindex(b"WARC/1.0\r\n", 0, data.index(b"WARC-Type: response", len(data) // 2))
    damaged = tmp_path / "damaged2.warc"
    damaged.write_bytes(data[:middle] + b"WXRC/9.9" + data[middle + 8 :])
    good, bad, reader = read_all(damaged, batch_size=100)  # the records read are in a batch not yet handed over
    assert 0 < len(good) < len(complete) and good == complete[: len(good)] and bad == []
    [problem] = reader.unreadable
    assert "a damaged WARC record after the record at byte" in problem["problem"] and problem["rows_read"] == len(good)


def test_a_warc_in_an_object_store_reads_like_a_local_one(request, tmp_path, pages):
    """s3:// WARC input through curator.storage, from a real moto server process (tests/test_s3.py's fixtures)."""
    if not HAVE_S3:
        pytest.skip("s3fs/moto not installed")
    fs, bucket = request.getfixturevalue("s3")
    path = tmp_path / "crawl.warc.gz"
    write_warc(path, pages[:6])
    fs.put_file(str(path), f"{bucket}/crawl/crawl.warc.gz")
    local_good, local_bad, _ = read_all(path)
    good, bad, reader = read_all(f"s3://{bucket}/crawl/crawl.warc.gz")
    assert good == local_good and [r["reject_reason"] for r in bad] == [r["reject_reason"] for r in local_bad]
    assert reader.unreadable == [] and len(good) == 7
