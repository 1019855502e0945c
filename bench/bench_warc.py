"""What reading Common Crawl archives costs per document, side by side in one run.

    .venv/bin/python bench/bench_warc.py [--docs 3000]

Builds a WARC (.warc.gz: warcinfo, request, response per page, as Common Crawl
writes it) from real WebOrganizer pages wrapped as HTML, and the WET file of the
same texts, then times on one core:

* FastWARC alone: iterate the records and read the bodies (the floor);
* curator's WARC reader: the above + Resiliparse main-text extraction + Arrow
  batches (what a run pays, ``curator.warc.read``);
* curator's WET reader (text already extracted by Common Crawl);
* trafilatura (FineWeb's extractor) on the same HTML, for comparison, on a sample.

The pages are the WebOrganizer texts in a small HTML shell (nav, article, footer):
real Common Crawl HTML is larger (tens of KB of markup per page), so per-document
extraction cost on real crawl files is higher; the ratios hold better than the
absolute figures.
"""

from __future__ import annotations

import argparse
import gzip
import html
import io
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import DATA, SHARED_DATA, machine  # noqa: E402

from curator.config import InputSpec  # noqa: E402
from curator.shards import InputReader, make_units  # noqa: E402


def as_html(text: str) -> bytes:
    paragraphs = "".join(f"<p>{html.escape(p)}</p>\n" for p in text.split("\n") if p.strip())
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>page</title><script>var x = 1;</script></head><body>"
        "<nav><a href='/'>Home</a> | <a href='/about'>About</a></nav>"
        f"<main><article>{paragraphs}</article></main><footer>Copyright</footer></body></html>"
    ).encode()


def build(docs: int) -> tuple[Path, Path, list[bytes]]:
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    folder = DATA / f"warc-{docs}"
    warc, wet = folder / "bench.warc.gz", folder / "bench.warc.wet.gz"
    rows = []
    with gzip.open(SHARED_DATA / "web" / "weborganizer_examples.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            rows.append(json.loads(line))
            if len(rows) >= docs:
                break
    bodies = [as_html(r["text"]) for r in rows]
    if warc.exists() and wet.exists():
        return warc, wet, bodies
    folder.mkdir(parents=True, exist_ok=True)
    with open(warc, "wb") as fh, open(wet, "wb") as fw:
        writer, wet_writer = WARCWriter(fh, gzip=True), WARCWriter(fw, gzip=True)
        writer.write_record(writer.create_warcinfo_record(warc.name, {"software": "bench"}))
        for row, body in zip(rows, bodies):
            url = row.get("url") or f"http://example.com/{row['id']}"
            writer.write_record(writer.create_warc_record(url, "request", payload=io.BytesIO(b"GET / HTTP/1.1\r\n\r\n")))
            http = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.1")
            writer.write_record(writer.create_warc_record(url, "response", payload=io.BytesIO(body), http_headers=http))
            wet_writer.write_record(wet_writer.create_warc_record(url, "conversion", payload=io.BytesIO(row["text"].encode()), warc_headers_dict={"Content-Type": "text/plain"}))
    return warc, wet, bodies


def timed(fn) -> tuple[float, int]:
    start = time.perf_counter()
    n = fn()
    return time.perf_counter() - start, n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=3000)
    parser.add_argument("--trafilatura-docs", type=int, default=300)
    args = parser.parse_args()
    import pyarrow as pa

    pa.set_cpu_count(1)
    warc, wet, bodies = build(args.docs)
    html_mb = sum(map(len, bodies)) / 1e6
    print(f"# {machine()}; {args.docs:,} pages, {html_mb:.1f} MB of HTML ({html_mb * 1e3 / args.docs:.1f} KB/page); {warc.stat().st_size / 1e6:.1f} MB .warc.gz")

    from fastwarc.warc import ArchiveIterator, WarcRecordType

    def fastwarc_only() -> int:
        n = 0
        for record in ArchiveIterator(open(warc, "rb"), record_types=WarcRecordType.response, parse_http=True):
            record.reader.read()
            n += 1
        return n

    def curator_read(path: Path) -> int:
        reader = InputReader(InputSpec(), 1000, "quarantine")
        return sum(good.num_rows + (bad.num_rows if bad is not None else 0) for good, bad in reader.read(make_units([str(path)])[0]))

    results = {}
    results["FastWARC: records + bodies only"] = timed(fastwarc_only)
    results["curator WARC reader (Resiliparse main text)"] = timed(lambda: curator_read(warc))
    results["curator WET reader"] = timed(lambda: curator_read(wet))
    try:
        import trafilatura

        sample = bodies[: args.trafilatura_docs]

        def with_trafilatura() -> int:
            for body in sample:
                trafilatura.extract(body.decode())
            return len(sample)

        results[f"trafilatura.extract ({len(sample)} pages)"] = timed(with_trafilatura)
    except ImportError:
        print("trafilatura not installed: its row is skipped")
    print()
    print("| reader | docs | seconds | docs/s | ms/doc |")
    print("|---|---|---|---|---|")
    for name, (seconds, n) in results.items():
        print(f"| {name} | {n:,} | {seconds:.2f} | {n / seconds:,.0f} | {1000 * seconds / n:.2f} |")
    ours = results["curator WARC reader (Resiliparse main text)"]
    traf = [v for k, v in results.items() if k.startswith("trafilatura")]
    if traf:
        print(f"\nResiliparse reader vs trafilatura, per document: {(traf[0][0] / traf[0][1]) / (ours[0] / ours[1]):.1f}x faster")
    print("(one process, Arrow held to 1 thread)")


if __name__ == "__main__":
    main()
