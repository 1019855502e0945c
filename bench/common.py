"""Shared benchmark inputs: the real web sample replicated into Parquet shards."""

from __future__ import annotations

import gzip
import json
import os
import platform
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
SHARED_DATA = Path(os.environ.get("CURATOR_SHARED_DATA", REPO.parent / "shared" / "data"))
DOLMA = SHARED_DATA / "web" / "dolma_cc_sample.jsonl.gz"
DATA = BENCH / "_data"
RUNS = BENCH / "_runs"


def load_dolma() -> list[dict]:
    with gzip.open(DOLMA, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def replicated_web_shards(min_text_mb: int = 200, shards: int = 16) -> tuple[list[Path], int, int]:
    """The dolma sample replicated (ids made unique) until it holds min_text_mb of text.

    Returns (shard paths, documents, text bytes). Cached under bench/_data.
    """
    folder = DATA / f"web-{min_text_mb}mb-{shards}"
    meta = folder / "meta.json"
    if meta.exists():
        info = json.loads(meta.read_text())
        return sorted(folder.glob("*.parquet")), info["docs"], info["text_bytes"]
    rows = load_dolma()
    one_copy = sum(len(r["text"].encode()) for r in rows)
    copies = -(-min_text_mb * 1_000_000 // one_copy)
    ids, texts, urls = [], [], []
    for c in range(copies):
        for r in rows:
            ids.append(f"{r['id']}-{c}")
            texts.append(r["text"])
            urls.append(r.get("metadata", {}).get("url"))
    table = pa.table({"id": ids, "text": texts, "url": urls})
    folder.mkdir(parents=True, exist_ok=True)
    per = -(-table.num_rows // shards)
    for i in range(shards):
        pq.write_table(table.slice(i * per, per), folder / f"shard-{i:03d}.parquet", compression="zstd")
    meta.write_text(json.dumps({"docs": table.num_rows, "text_bytes": one_copy * copies}))
    return sorted(folder.glob("*.parquet")), table.num_rows, one_copy * copies


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


class timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
