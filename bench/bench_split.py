"""One big file, 1 vs 2 workers: work units split from one Parquet file keep both workers busy.

    python bench/bench_split.py [--mb 2000] [--unit-mb 128]

Builds one Parquet file holding about --mb MB of real web text (the dolma
sample replicated, ids made unique; row groups of ~14k rows), then runs the
same pipeline (text_stats + a SQL filter) through the real `curator run`:
1 worker; 2 workers on the whole file as one unit (how curator ran before
splitting); 2 workers with units of --unit-mb. Prints wall time, docs/s and
the speed-up, and checks all three runs keep the same rows.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA, RUNS, load_dolma, machine  # noqa: E402

CURATOR = Path(sys.executable).parent / "curator"
PIPELINE = """name: split-bench
steps:
  - step: text_stats
  - step: sql_filter
    where: text_stats__words >= 50
    reason: short
"""


def big_file(mb: int) -> tuple[Path, int]:
    path = DATA / f"big-{mb}mb.parquet"
    if path.exists():
        return path, pq.read_metadata(path).num_rows
    rows = load_dolma()
    base = pa.table({"id": [r["id"] for r in rows], "text": [r["text"] for r in rows], "url": [r.get("metadata", {}).get("url") for r in rows]})
    copies = -(-mb * 1_000_000 // base.column("text").nbytes)
    per_group = 20  # copies per row group: ~14k rows, ~50 MB of text
    path.parent.mkdir(parents=True, exist_ok=True)
    with pq.ParquetWriter(path.with_suffix(".tmp"), base.schema, compression="zstd") as writer:
        for first in range(0, copies, per_group):
            parts = []
            for c in range(first, min(first + per_group, copies)):
                parts.append(base.set_column(0, "id", pc.binary_join_element_wise(base.column("id"), pa.scalar(f"-{c}"), "")))
            writer.write_table(pa.concat_tables(parts))
    path.with_suffix(".tmp").rename(path)
    return path, copies * base.num_rows


def run(name: str, source: Path, workers: int, unit_mb: float) -> tuple[float, dict]:
    pipeline = RUNS / "split.yaml"
    pipeline.parent.mkdir(parents=True, exist_ok=True)
    pipeline.write_text(PIPELINE)
    out = RUNS / f"split-{name}"
    t0 = time.perf_counter()
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(
        [str(CURATOR), "run", str(pipeline), "-i", str(source), "-o", str(out), "-q", "--overwrite", "-w", str(workers), "--unit-mb", str(unit_mb)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    seconds = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    stats = json.loads((out / "stats.json").read_text())
    stats["cpu_seconds"] = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    return seconds, stats


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=2000)
    parser.add_argument("--unit-mb", type=float, default=128)
    args = parser.parse_args()
    source, docs = big_file(args.mb)
    print(f"input: one Parquet file, {source.stat().st_size / 2**20:.0f} MiB on disk, {docs:,} documents, {pq.read_metadata(source).num_row_groups} row groups")
    print(f"machine: {machine()}")
    results = {}
    for name, workers, unit_mb in (("1-worker", 1, args.unit_mb), ("2-workers-whole-file", 2, 10**6), ("2-workers-split", 2, args.unit_mb)):
        seconds, stats = run(name, source, workers, unit_mb)
        results[name] = (seconds, stats)
        print(
            f"{name:<24} {seconds:>7.1f} s  {docs / seconds:>8,.0f} docs/s  units {stats['shards']['total']:>3}  CPU {stats['cpu_seconds']:>6.1f} s ({stats['cpu_seconds'] / seconds:.2f} cores)  kept {stats['kept']:,}"
        )
    base = results["1-worker"][0]
    print(f"speed-up, 2 workers on one file: split {base / results['2-workers-split'][0]:.2f}x, whole file {base / results['2-workers-whole-file'][0]:.2f}x")
    assert len({r[1]["kept"] for r in results.values()}) == 1, "runs kept different rows"


if __name__ == "__main__":
    main()
