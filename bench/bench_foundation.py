"""Framework overhead and Ray scaling, side by side in one run.

    python bench/bench_foundation.py [--text-mb 200] [--repeat 3] [--no-ray]

1. a one-step no-op pipeline (local, 1 worker) vs plain pyarrow read+write of
   the same Parquet shards (best of --repeat, alternating);
2. the Ray executor with 1 vs 2 workers, on the same no-op pipeline and on a
   CPU-bound one (datatrove's Gopher + FineWeb filters over fewer documents).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RUNS, machine, replicated_web_shards, timer  # noqa: E402

from curator.config import Pipeline, PipelineOptions, StepSpec  # noqa: E402
from curator.plugins import get_registry  # noqa: E402
from curator.runner import run_pipeline  # noqa: E402


def pipeline(*step_types: str) -> Pipeline:
    steps = [StepSpec(type=t, name=t, params={}, line=i + 1) for i, t in enumerate(step_types)]
    return Pipeline(options=PipelineOptions(name="bench"), steps=steps, source="bench")


def plain_read_write(shards: list[Path], out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for shard in shards:
        pq.write_table(pq.read_table(shard), out_dir / shard.name, compression="zstd")


def run(pipe: Pipeline, shards: list[Path], out_dir: Path, executor="local", workers=1) -> dict:
    shutil.rmtree(out_dir, ignore_errors=True)
    return run_pipeline(pipe, out_dir, registry=get_registry(), inputs=[str(s) for s in shards], executor=executor, workers=workers, progress=False)


def best_of(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        with timer() as t:
            fn()
        times.append(t.seconds)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--text-mb", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-ray", action="store_true")
    args = parser.parse_args()
    shards, docs, text_bytes = replicated_web_shards(args.text_mb)
    print(f"input: {len(shards)} Parquet shards, {docs:,} documents, {text_bytes / 1e6:.0f} MB of text; {machine()}")
    for s in shards:  # warm the page cache so neither side pays for the first read
        s.read_bytes()
    noop = pipeline("noop")
    plain_t, ours_t = [], []
    for _ in range(args.repeat):  # alternate, so drift hits both sides alike
        plain_t.append(best_of(1, lambda: plain_read_write(shards, RUNS / "plain")))
        ours_t.append(best_of(1, lambda: run(noop, shards, RUNS / "noop-local")))
    plain, ours = min(plain_t), min(ours_t)
    print(f"plain pyarrow read+write         {plain:7.2f}s  {docs / plain:9,.0f} docs/s  {text_bytes / 1e6 / plain:6.0f} MB/s")
    print(f"curator noop, local, 1 worker    {ours:7.2f}s  {docs / ours:9,.0f} docs/s  {text_bytes / 1e6 / ours:6.0f} MB/s")
    print(f"  overhead: {ours / plain:.3f}x plain read+write (goal <= 1.15x)")
    if args.no_ray:
        return
    from curator.executors.ray import RayExecutor

    filters = pipeline("gopher_quality", "fineweb_quality")
    few = shards[:4]
    few_docs = sum(pq.ParquetFile(s).metadata.num_rows for s in few) // 4  # a quarter of each shard's rows
    engine = RayExecutor(workers=2, temp_dir=str(RUNS / "ray-tmp"))  # Ray starts outside the timings
    sliced = []
    for i, s in enumerate(few):
        out = RUNS / "filter-input" / f"part-{i}.parquet"
        out.parent.mkdir(parents=True, exist_ok=True)
        t = pq.read_table(s)
        pq.write_table(t.slice(0, t.num_rows // 4), out)
        sliced.append(out)
    try:
        # warm Ray's worker processes (imports, spaCy) once, outside the timings, so
        # neither worker count pays the cold start
        engine.workers = 2
        run(filters, sliced[:2], RUNS / "ray-warmup", executor=engine, workers=2)
        timings = {}
        for name, pipe, inputs, n in (("noop", noop, shards, docs), ("gopher+fineweb", filters, sliced, few_docs)):
            for workers in (1, 2):
                engine.workers = workers
                best = float("inf")
                for _ in range(2 if name == "noop" else 1):
                    with timer() as t:
                        summary = run(pipe, inputs, RUNS / f"ray-{workers}", executor=engine, workers=workers)
                    assert summary["balanced"]
                    best = min(best, t.seconds)
                timings[(name, workers)] = best
                print(f"ray, {name:<15} {workers} worker{'s' if workers > 1 else ' '} {best:7.2f}s  {n / best:9,.0f} docs/s")
            print(f"  ray scaling, {name}: 2 workers = {timings[(name, 1)] / timings[(name, 2)]:.2f}x 1 worker (goal >= 1.7x)")
        with timer() as t:
            run(filters, sliced, RUNS / "local-filters", workers=1)
        print(f"local, gopher+fineweb  1 worker  {t.seconds:7.2f}s  (Ray 1 worker / local = {timings[('gopher+fineweb', 1)] / t.seconds:.2f}x)")
    finally:
        engine.close()
        shutil.rmtree(RUNS, ignore_errors=True)


if __name__ == "__main__":
    main()
