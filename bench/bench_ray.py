"""Ray executor vs local executor on many small shards: is a cheap pass dominated by scheduling?

    .venv/bin/python bench/bench_ray.py [--mb 100] [--shards 16]

Runs the no-op pipeline and the demo's heuristic chain (text_stats, min length,
Gopher repetition, Gopher quality, C4, FineWeb; no LLM) over the same Parquet
shards, side by side in one process: local with 1 and 2 workers, Ray with 1
and 2 workers (one Ray session started once; its start-up is printed apart).
Prints docs/s and the ratios (2 workers / 1 worker, Ray / local) and checks
that Ray and local keep the same rows. "busy" is the share of the workers'
wall time spent inside shards: what is left is scheduling and start-up (on a
loaded machine, shards also slow down, which "busy" does not hide).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import duckdb  # noqa: E402
from common import RUNS, machine, replicated_web_shards  # noqa: E402

from curator import plugins  # noqa: E402
from curator.config import load_pipeline  # noqa: E402
from curator.runner import run_pipeline  # noqa: E402

PIPELINES = {
    "no-op": "steps:\n  - step: noop\n",
    "heuristic chain": """
steps:
  - step: text_stats
    name: stats
  - step: sql_filter
    name: min_length
    where: stats__words >= 50
    reason: too_few_words
  - step: gopher_repetition
  - step: gopher_quality
  - step: c4_quality
  - step: fineweb_quality
""",
}


def kept_ids(run: Path) -> list[str]:
    con = duckdb.connect(str(run / "curator.duckdb"), read_only=True)
    try:
        return [r[0] for r in con.execute("SELECT id FROM kept ORDER BY id").fetchall()]
    finally:
        con.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=100, help="MB of text (the dolma sample replicated)")
    parser.add_argument("--shards", type=int, default=16)
    args = parser.parse_args()
    shards, docs, text_bytes = replicated_web_shards(args.mb, args.shards)
    folder = str(shards[0].parent / "*.parquet")
    print(f"# {machine()}; {docs:,} documents, {text_bytes / 1e6:.0f} MB of text in {len(shards)} Parquet shards")

    from curator.executors.ray import RayExecutor

    t0 = time.perf_counter()
    ray_engines = {w: RayExecutor(workers=w) for w in (2, 1)}  # the first starts Ray (3 CPUs: 2 workers + 1 spare)
    print(f"Ray start-up (once per run): {time.perf_counter() - t0:.1f} s, not counted below")

    registry = plugins.get_registry()
    root = RUNS / "ray"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    # The first pass on fresh Ray workers pays for their imports and step set-up: shown apart.
    (root / "warm.yaml").write_text(PIPELINES["heuristic chain"])
    t0 = time.perf_counter()
    run_pipeline(load_pipeline(root / "warm.yaml", registry), root / "warm", inputs=[str(shards[0])], executor=ray_engines[2], workers=2, progress=False)
    print(f"first Ray pass on cold workers (1 shard): {time.perf_counter() - t0:.1f} s, not counted below")
    results: dict[tuple[str, str, int], float] = {}
    busy_share: dict[tuple[str, str, int], float] = {}
    for name, text in PIPELINES.items():
        path = root / f"{name.replace(' ', '_')}.yaml"
        path.write_text(text)
        pipe = load_pipeline(path, registry)
        ids = {}
        for kind in ("local", "ray"):
            for workers in (1, 2):
                out = root / f"{path.stem}-{kind}-{workers}"
                engine = ray_engines[workers] if kind == "ray" else "local"
                start = time.perf_counter()
                stats = run_pipeline(pipe, out, inputs=[folder], executor=engine, workers=workers, progress=False)
                seconds = time.perf_counter() - start
                assert stats["balanced"] and stats["input"] == docs
                results[(name, kind, workers)] = seconds
                ids[(kind, workers)] = kept_ids(out)
                # the share of the workers' wall time spent inside shards (what is not is scheduling and start-up)
                busy = sum(json.loads(m.read_text())["seconds"] for m in out.glob("pass-0/_done/*.json")) / (workers * seconds)
                busy_share[(name, kind, workers)] = busy
                print(f"{name:16} {kind:5} {workers} worker(s): {seconds:6.1f} s  {docs / seconds:8,.0f} docs/s  busy {busy:4.0%}  kept {stats['kept']:,}", flush=True)
        assert len({tuple(v) for v in ids.values()}) == 1, f"{name}: Ray and local keep different rows"
    print()
    print("| pipeline | local 1 | local 2 | Ray 1 | Ray 2 | local 2/1 | Ray 2/1 | Ray 2 / local 2 | busy: local 1, 2; Ray 1, 2 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in PIPELINES:
        rate = {(k, w): docs / results[(name, k, w)] for k in ("local", "ray") for w in (1, 2)}
        print(
            f"| {name} | {rate['local', 1]:,.0f} | {rate['local', 2]:,.0f} | {rate['ray', 1]:,.0f} | {rate['ray', 2]:,.0f} "
            f"| {rate['local', 2] / rate['local', 1]:.2f}x | {rate['ray', 2] / rate['ray', 1]:.2f}x | {rate['ray', 2] / rate['local', 2]:.2f}x "
            f"| {', '.join(f'{busy_share[(name, k, w)]:.0%}' for k in ('local', 'ray') for w in (1, 2))} |"
        )
    print("(docs/s; identical kept rows on every executor; busy: time inside shards / (workers x wall time))")
    for engine in ray_engines.values():
        engine.close()


if __name__ == "__main__":
    main()
