"""`curator diff` on two real runs that differ by a threshold, beside the same comparison done by hand.

    python bench/bench_diff.py [--text-mb 200]

Input: the dolma web sample replicated to --text-mb MB of text (bench/common.py,
ids made unique). Run A keeps documents of at least 100 words, run B at least
300 (`--set words.min=300`). Then, side by side:

* `curator diff A B --json` (the real CLI: DuckDB over both runs' shards, the
  process start and plugin loading included);
* by hand: pyarrow reads id / reject_step / reject_reason of both runs, pandas
  merges on id and counts the groups (what a user would script without it).

Both must give the same groups; the ratio of their wall times is printed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RUNS, machine, replicated_web_shards  # noqa: E402

CURATOR = Path(sys.executable).parent / "curator"
PIPELINE = """
name: bench_diff
steps:
  - step: text_stats
  - step: range_filter
    name: words
    column: text_stats__words
    min: 100
    reason: too_few_words
"""


def run(pipeline: Path, shards_dir: Path, out: Path, *extra: str) -> None:
    if (out / "manifest.json").exists() and json.loads((out / "manifest.json").read_text()).get("status") == "done":
        return
    subprocess.run([str(CURATOR), "run", str(pipeline), "-i", str(shards_dir / "*.parquet"), "-o", str(out), "-q", "--overwrite", *extra], check=True, capture_output=True)


def by_hand(a: Path, b: Path) -> dict[tuple[str, str], int]:
    """kept in A, rejected in B, by B's step and reason: pyarrow + pandas."""

    def outcomes(run_dir: Path) -> pd.DataFrame:
        last = json.loads((run_dir / "manifest.json").read_text())["passes"][-1]["dir"]
        kept = [pq.read_table(p, columns=["id"]).to_pandas() for p in sorted((run_dir / last / "kept").glob("*.parquet"))]
        rejected = [pq.read_table(p, columns=["id", "reject_step", "reject_reason"]).to_pandas() for p in sorted(run_dir.glob("pass-*/rejected/*.parquet"))]
        return pd.concat(kept + rejected, ignore_index=True)

    pairs = outcomes(a).merge(outcomes(b), on="id", suffixes=("_a", "_b"))
    lost = pairs[pairs.reject_step_a.isna() & pairs.reject_step_b.notna()]
    return {k: int(v) for k, v in lost.groupby(["reject_step_b", "reject_reason_b"]).size().items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--text-mb", type=int, default=200)
    args = parser.parse_args()
    shards, docs, text_bytes = replicated_web_shards(args.text_mb)
    RUNS.mkdir(parents=True, exist_ok=True)
    pipeline = RUNS / "bench_diff.yaml"
    pipeline.write_text(PIPELINE)
    a, b = RUNS / f"diff-a-{args.text_mb}", RUNS / f"diff-b-{args.text_mb}"
    run(pipeline, shards[0].parent, a)
    run(pipeline, shards[0].parent, b, "--set", "words.min=300")

    start = time.perf_counter()
    out = subprocess.run([str(CURATOR), "diff", str(a), str(b), "--json", "--limit", "3"], check=True, capture_output=True, text=True).stdout
    diff_seconds = time.perf_counter() - start
    ours = {(g["step"], g["reason"]): g["count"] for g in json.loads(out)["kept_a_rejected_b"]}

    from curator.cli.diff import diff_runs

    start = time.perf_counter()
    in_process = diff_runs(a, b, limit=3)
    in_process_seconds = time.perf_counter() - start

    start = time.perf_counter()
    theirs = by_hand(a, b)
    hand_seconds = time.perf_counter() - start

    assert ours == theirs == {(g["step"], g["reason"]): g["count"] for g in in_process["kept_a_rejected_b"]}, (ours, theirs)
    print(f"machine: {machine()}")
    print(f"input: {docs:,} documents, {text_bytes / 1e6:.0f} MB of text; kept in A, rejected in B: {sum(ours.values()):,}")
    print(f"curator diff, CLI (process start and plugin loading included): {diff_seconds:.2f} s")
    print(f"diff_runs() in one process (every group, counts, 3 examples each): {in_process_seconds:.2f} s")
    print(f"by hand, pyarrow + pandas merge (one group's counts only):        {hand_seconds:.2f} s")
    print(f"ratio by hand / diff_runs: {hand_seconds / in_process_seconds:.2f}x; by hand / CLI: {hand_seconds / diff_seconds:.2f}x; same groups and counts: yes")


if __name__ == "__main__":
    main()
