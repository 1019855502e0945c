"""Heuristic filters, curator's columnar rules vs datatrove's classes, side by side in one run.

    python bench/bench_heuristics.py [--datatrove-docs 1000] [--curator-docs 10000]
    python bench/bench_heuristics.py --agreement      # decisions on all 11,589 real documents

Speed: each filter (gopher_quality, gopher_repetition, fineweb_quality,
c4_quality) and the demo's chain of the four, as the curator step with
``impl: curator`` (default) and ``impl: datatrove``, on the same Parquet shards,
Parquet read included, through the host's fused-pass loop (``run_steps``), one
process. docs/s per core = documents / CPU seconds of this process (the machine
is shared; CPU time is what a core spends). Two inputs:

* ``web``: bench/common.py's dolma sample replicated into shards (the first copy
  of each document is new to curator's word vocabulary, later copies are not);
* ``distinct``: the 10,892 WebOrganizer pages, each seen once, the vocabulary
  emptied before each measurement (the worst case for curator's cache).

Agreement: datatrove's verdicts on every document of WebOrganizer + dolma
(cached under bench/_data, keyed by datatrove's version; computing them takes
~20 minutes on one core here) against curator's, per filter, with the
documents that differ.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA, DOLMA, SHARED_DATA, machine, replicated_web_shards  # noqa: E402

from curator.passes import run_steps  # noqa: E402
from curator.plugins import get_registry  # noqa: E402
from curator_plugins import heuristics as H  # noqa: E402

WEBORG = SHARED_DATA / "web" / "weborganizer_examples.jsonl.gz"
FILTERS = ["gopher_quality", "gopher_repetition", "fineweb_quality", "c4_quality"]
# the demo pipeline's chain (pipelines/demo.yaml before the quality loop)
CHAIN = [("gopher_repetition", {}), ("gopher_quality", {}), ("fineweb_quality", {}), ("c4_quality", {"filter_no_terminal_punct": False})]


def build(name: str, impl: str, **params):
    step = get_registry().lookup(name).cls(impl=impl, **params)
    step.setup()
    return step


def distinct_shards() -> list[Path]:
    folder = DATA / "weborganizer-distinct"
    if not folder.exists():
        with gzip.open(WEBORG, "rt", encoding="utf-8") as fh:
            rows = [json.loads(line) for line in fh]
        table = pa.table({"id": [str(r["id"]) for r in rows], "text": [r["text"] for r in rows]})
        folder.mkdir(parents=True)
        per = -(-table.num_rows // 4)
        for i in range(4):
            pq.write_table(table.slice(i * per, per), folder / f"shard-{i}.parquet", compression="zstd")
    return sorted(folder.glob("*.parquet"))


def batches(shards: list[Path], limit: int, batch_size: int = 1000):
    """Parquet read as the host reads it: (id, text) batches, up to ``limit`` rows."""
    left = limit
    for shard in shards:
        for batch in pq.ParquetFile(shard).iter_batches(batch_size=batch_size, columns=["id", "text"]):
            table = pa.Table.from_batches([batch])
            if table.num_rows > left:
                table = table.slice(0, left)
            left -= table.num_rows
            yield table
            if left <= 0:
                return


def measure(steps, shards: list[Path], limit: int) -> tuple[float, int, int]:
    """(docs per CPU second, documents, documents kept) for the fused steps over ``limit`` rows."""
    rejected: dict = defaultdict(Counter)
    errors: dict = defaultdict(list)
    seconds: defaultdict[str, float] = defaultdict(float)
    docs = kept = 0
    cpu = time.process_time()
    for table in batches(shards, limit):
        out, _ = run_steps(table, steps, True, rejected, errors, seconds)
        docs += table.num_rows
        kept += out.num_rows
    return docs / (time.process_time() - cpu), docs, kept


def speed(args) -> None:
    web, web_docs, _ = replicated_web_shards(min_text_mb=args.text_mb)
    inputs = {"web": web, "distinct": distinct_shards()}
    print(f"# heuristic filters, docs/s per core (CPU time), {machine()}")
    print("# curator: impl curator (columnar); datatrove: impl datatrove (its classes); same shards, Parquet read included")
    print(f"{'input':9} {'filter':18} {'curator docs/s':>15} {'datatrove docs/s':>17} {'ratio':>7}   (docs: curator / datatrove, kept equal on the common rows)")
    for label, shards in inputs.items():
        for name in FILTERS + ["chain of four"]:
            spec = CHAIN if name == "chain of four" else [(name, {})]
            H._VOCABS.clear()  # every measurement starts with an empty word vocabulary
            H._WORD_CACHE.clear()
            ours, n_ours, _ = measure([build(s, "curator", **p) for s, p in spec], shards, args.curator_docs)
            theirs, n_theirs, kept_theirs = measure([build(s, "datatrove", **p) for s, p in spec], shards, args.datatrove_docs)
            H._VOCABS.clear()
            H._WORD_CACHE.clear()
            _, _, kept_ours = measure([build(s, "curator", **p) for s, p in spec], shards, args.datatrove_docs)
            same = "same kept" if kept_ours == kept_theirs else f"kept {kept_ours} vs {kept_theirs}"
            print(f"{label:9} {name:18} {ours:15.0f} {theirs:17.0f} {ours / theirs:6.2f}x   ({n_ours} / {n_theirs}; {same})", flush=True)


# ------------------------------------------------------------------ agreement


def corpus() -> list[tuple[str, str]]:
    docs = []
    for path in (WEBORG, DOLMA):
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            docs += [(str(r["id"]), r["text"]) for r in map(json.loads, fh)]
    return docs


AGREE = {
    "gopher_quality": ("GopherQualityFilter", {}),
    "gopher_repetition": ("GopherRepetitionFilter", {}),
    "fineweb_quality": ("FineWebQualityFilter", {}),
    "c4_quality": ("C4QualityFilter", {}),
    "c4_quality (demo: filter_no_terminal_punct false)": ("C4QualityFilter", {"filter_no_terminal_punct": False}),
}


def datatrove_verdicts(docs: list[tuple[str, str]]) -> dict[str, list]:
    from importlib.metadata import version

    from datatrove.data import Document
    from datatrove.pipeline import filters

    cache = DATA / f"heuristics-datatrove-{version('datatrove')}-{len(docs)}.json.gz"
    if cache.exists():
        with gzip.open(cache, "rt") as fh:
            return json.load(fh)
    instances = {name: getattr(filters, cls)(**params) for name, (cls, params) in AGREE.items()}
    out: dict[str, list] = {name: [] for name in AGREE}
    for i, (doc_id, text) in enumerate(docs):
        for name, f in instances.items():
            v = f.filter(Document(text=text, id=doc_id, metadata={}))
            out[name].append(list(v) if isinstance(v, tuple) else [True, None])
        if i % 1000 == 0:
            print(f"  datatrove: {i} documents", file=sys.stderr, flush=True)
    DATA.mkdir(parents=True, exist_ok=True)
    with gzip.open(cache, "wt") as fh:
        json.dump(out, fh)
    return out


def agreement(args) -> None:
    docs = corpus()
    ids = [d[0] for d in docs]
    texts = [d[1] for d in docs]
    theirs = datatrove_verdicts(docs)
    print(f"# decisions on {len(docs)} real documents (WebOrganizer + dolma), curator impl curator vs datatrove")
    print(f"{'filter':52} {'same decision':>14} {'same reason':>12} {'rejected (datatrove)':>21}")
    for name, (_, params) in AGREE.items():
        fn = H.IMPLEMENTATIONS[name.split(" ")[0]]
        keep, reasons = [], []
        for start in range(0, len(docs), 1000):
            k, r = fn(texts[start : start + 1000], ids[start : start + 1000], **params)
            keep += [bool(x) for x in k]
            reasons += r
        ours = [(k, None if k else r) for k, r in zip(keep, reasons)]
        ref = [(bool(v[0]), None if v[0] else v[1]) for v in theirs[name]]
        decision = sum(a[0] == b[0] for a, b in zip(ours, ref))
        reason = sum(a == b for a, b in zip(ours, ref))
        print(f"{name:52} {decision / len(docs):13.3%} {reason / len(docs):11.3%} {sum(not b[0] for b in ref):21d}")
        for i, (a, b) in enumerate(zip(ours, ref)):
            if a != b:
                print(f"    differs: {ids[i]}: curator {a}, datatrove {b}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--agreement", action="store_true", help="compare decisions on all 11,589 documents")
    parser.add_argument("--datatrove-docs", type=int, default=1000)
    parser.add_argument("--curator-docs", type=int, default=10000)
    parser.add_argument("--text-mb", type=int, default=200)
    args = parser.parse_args()
    if args.agreement:
        agreement(args)
    else:
        speed(args)


if __name__ == "__main__":
    main()
