"""Object-store run vs local-disk run on the same input: the overhead of s3:// (moto on loopback).

    python bench/bench_s3.py [--mb 100]

Starts a real moto S3 server process on 127.0.0.1, uploads the benchmark
input (the dolma sample replicated to --mb MB of text, 8 Parquet shards), and
runs the same pipeline (text_stats + a SQL filter, 2 workers) three ways
through the real `curator run`: local input -> local run; s3 input -> local
run; s3 input -> s3 run (staging + unit-by-unit upload). Prints wall times
and the ratios to the local run, and checks all keep the same rows.
Loopback has no network latency or bandwidth limit, so this measures
curator's own overhead (listing, ranged reads, uploads), not a real store's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RUNS, machine, replicated_web_shards  # noqa: E402

CURATOR = Path(sys.executable).parent / "curator"
PIPELINE = """name: s3-bench
steps:
  - step: text_stats
  - step: sql_filter
    where: text_stats__words >= 50
    reason: short
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    shards, docs, text_bytes = replicated_web_shards(args.mb, 8)
    port = free_port()
    server = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    staging = Path(tempfile.mkdtemp(prefix="curator-s3-bench-"))
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_DEFAULT_REGION": "us-east-1",
        "CURATOR_STAGING_DIR": str(staging),
    }
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        os.environ.update(env)
        import fsspec

        fs = fsspec.filesystem("s3")
        fs.mkdir("bench")
        t0 = time.perf_counter()
        for shard in shards:
            fs.put_file(str(shard), f"bench/in/{shard.name}")
        upload = time.perf_counter() - t0
        pipeline = RUNS / "s3.yaml"
        pipeline.parent.mkdir(parents=True, exist_ok=True)
        pipeline.write_text(PIPELINE)
        print(f"input: {docs:,} documents, {text_bytes / 1e6:.0f} MB of text in 8 Parquet shards ({sum(s.stat().st_size for s in shards) / 2**20:.0f} MiB; upload to moto {upload:.1f} s)")
        print(f"machine: {machine()}")
        cases = {
            "local -> local": (str(shards[0].parent / "*.parquet"), str(RUNS / "s3-local")),
            "s3 -> local": ("s3://bench/in/*.parquet", str(RUNS / "s3-input")),
            "s3 -> s3": ("s3://bench/in/*.parquet", "s3://bench/runs/r"),
        }
        results = {}
        for name, (source, output) in cases.items():
            t0 = time.perf_counter()
            subprocess.run([str(CURATOR), "run", str(pipeline), "-i", source, "-o", output, "-q", "--overwrite", "-w", str(args.workers)], check=True, env=env, stdout=subprocess.DEVNULL)
            seconds = time.perf_counter() - t0
            stats = json.loads((Path(output) / "stats.json").read_text()) if not output.startswith("s3://") else json.loads(fs.cat("bench/runs/r/stats.json"))
            results[name] = (seconds, stats["kept"])
            print(f"{name:<16} {seconds:>7.1f} s  {docs / seconds:>8,.0f} docs/s  x{seconds / results['local -> local'][0]:.2f} of local  kept {stats['kept']:,}")
        assert len({kept for _, kept in results.values()}) == 1, "runs kept different rows"
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(staging, ignore_errors=True)


if __name__ == "__main__":
    main()
