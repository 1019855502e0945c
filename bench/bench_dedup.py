"""Throughput: language_id vs raw fastText predict; exact and MinHash dedup runs on replicated web shards.

    .venv/bin/python bench/bench_dedup.py [--mb 20]

1. language_id's batch path (``filter`` on Arrow batches) against the limit,
   ``model.predict`` on the same texts already in a Python list (newlines
   replaced), one core.
2. A full curator run (exact_dedup then minhash_dedup, one worker) over the
   dolma sample replicated into Parquet shards -- every document has
   duplicates, the worst case for the fit and the filter: docs/s and the
   peak RSS of this process (driver + fit; workers run in-process).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RUNS, load_dolma, machine, replicated_web_shards  # noqa: E402

from curator.config import parse_pipeline, Pipeline  # noqa: E402
from curator.plugins import get_registry  # noqa: E402
from curator.runner import run_pipeline  # noqa: E402
from curator_plugins.language_id import LanguageId  # noqa: E402


def bench_lid(repeat: int = 3) -> None:
    texts = [r["text"] for r in load_dolma()]
    step = LanguageId(name="lid")
    step.setup()
    lines = [t.replace("\n", " ") for t in texts]
    best_raw = best_step = float("inf")
    batches = [pa.table({"id": [str(i) for i in range(j, min(j + 1000, len(texts)))], "text": texts[j : j + 1000]}) for j in range(0, len(texts), 1000)]
    for _ in range(repeat):
        start = time.perf_counter()
        step._model.predict(lines, k=1)
        best_raw = min(best_raw, time.perf_counter() - start)
        start = time.perf_counter()
        for batch in batches:
            step.filter(batch)
        best_step = min(best_step, time.perf_counter() - start)
    print(f"language_id: raw predict {len(texts) / best_raw:,.0f} docs/s, stage {len(texts) / best_step:,.0f} docs/s, ratio {best_raw / best_step:.2f}")


def bench_dedup(mb: int) -> None:
    shards, docs, text_bytes = replicated_web_shards(mb, shards=8)
    options, specs = parse_pipeline("steps:\n  - step: exact_dedup\n    name: exact\n  - step: minhash_dedup\n    name: fuzzy\n", "bench")
    out = RUNS / f"dedup-{mb}mb"
    start = time.perf_counter()
    stats = run_pipeline(Pipeline(options, specs, "bench"), out, registry=get_registry(), inputs=[str(s) for s in shards], progress=False, overwrite=True)
    seconds = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"dedup {docs:,} docs ({text_bytes / 1e6:.0f} MB text, {len(shards)} shards): {seconds:.1f} s, {docs / seconds:,.0f} docs/s on one worker, peak RSS {rss:,.0f} MiB, kept {stats.get('kept')}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=int, default=20, help="MB of text for the dedup run")
    args = ap.parse_args()
    print(f"# {machine()}")
    bench_lid()
    bench_dedup(args.mb)


if __name__ == "__main__":
    main()
