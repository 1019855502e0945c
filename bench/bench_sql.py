"""`curator sql` GROUP BY over 10 M rows: output shards with ~100k-row row groups vs one group per batch.

    python bench/bench_sql.py [--rows 10000000] [--reuse]

Builds a synthetic corpus with real-looking columns (real web text snippets from
the dolma sample, urls, domains, languages, scores, dates) as Parquet inputs,
runs it through `curator run` (a no-op step: the ingest path and the writer),
then times GROUP BY queries through the real `curator sql` CLI on that run and
on a copy whose shards are rewritten with one row group per 2,000-row batch
(how curator wrote them before `row_group_rows`). Disk: well under 3 GB
(text snippets repeat, so zstd and dictionary encoding keep the files small).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA, RUNS, load_dolma, machine  # noqa: E402

CURATOR = Path(sys.executable).parent / "curator"
QUERIES = {
    "count by domain (top 10)": "SELECT domain, count(*) AS n, avg(score) AS s FROM kept GROUP BY domain ORDER BY n DESC LIMIT 10",
    "by language and month": "SELECT language, date_trunc('month', crawled) AS m, count(*), avg(words) FROM kept GROUP BY ALL ORDER BY 1, 2 LIMIT 5",
    "score histogram": "SELECT round(score, 1) AS bucket, count(*) FROM documents GROUP BY 1 ORDER BY 1",
}


def synthetic_inputs(rows: int, files: int = 20) -> Path:
    folder = DATA / f"sql-{rows}"
    if (folder / "meta.json").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    docs = load_dolma()
    snippets = pa.array([d["text"][:400] for d in docs])
    words = pa.array([len(d["text"][:400].split()) for d in docs], pa.int32())
    domains = pa.array([f"site{i}.{tld}" for i, tld in zip(range(5000), np.resize(["com", "org", "net", "de", "fr", "io"], 5000))])
    languages = pa.array(["en", "de", "fr", "es", "it", "pt", "nl", "ru", "ja", "zh", "pl", "sv"])
    per = -(-rows // files)
    start = np.datetime64("2019-01-01T00:00:00")
    for f in range(files):
        n = min(per, rows - f * per)
        first = f * per
        pick = pa.array(rng.integers(0, len(snippets), n))
        domain = domains.take(pa.array(rng.zipf(1.3, n) % len(domains)))
        ids = pc.binary_join_element_wise("doc-", pc.cast(pa.array(np.arange(first, first + n)), pa.string()), "")
        table = pa.table(
            {
                "id": ids,
                "text": snippets.take(pick),
                "url": pc.binary_join_element_wise("https://", domain, "/page/", ids, ""),
                "domain": domain,
                "language": languages.take(pa.array(rng.integers(0, len(languages), n))),
                "score": pa.array(rng.beta(2, 5, n).astype(np.float32)),
                "words": words.take(pick),
                "crawled": pa.array(start + rng.integers(0, 3 * 365 * 86400, n).astype("timedelta64[s]")),
            }
        )
        pq.write_table(table, folder / f"in-{f:03d}.parquet", compression="zstd")
    (folder / "meta.json").write_text(json.dumps({"rows": rows}))
    return folder


def curator_sql(run: Path, query: str) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([str(CURATOR), "sql", query, "--run", str(run), "--format", "csv"], capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(proc.stderr)
    return time.perf_counter() - t0


def one_group_per_batch(run: Path, copy: Path, batch: int = 2000) -> None:
    """The same run with every shard rewritten as curator wrote it before: a row group per batch."""
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("*.parquet", "curator.duckdb", ".curator.lock"))
    for path in run.glob("pass-*/*/*.parquet"):
        target = copy / path.relative_to(run)
        target.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pq.read_table(path), target, row_group_size=batch, compression="zstd")


def groups(run: Path) -> tuple[int, int]:
    files = list(run.glob("pass-*/*/*.parquet"))
    return len(files), sum(pq.ParquetFile(p).metadata.num_row_groups for p in files)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--reuse", action="store_true", help="query the run left by an earlier call instead of running it again")
    args = parser.parse_args()
    t0 = time.perf_counter()
    inputs = synthetic_inputs(args.rows)
    print(f"inputs: {args.rows:,} rows in {inputs} ({sum(p.stat().st_size for p in inputs.glob('*.parquet')) / 2**20:.0f} MiB), {time.perf_counter() - t0:.0f} s")
    pipeline = RUNS / "sql-noop.yaml"
    pipeline.parent.mkdir(parents=True, exist_ok=True)
    pipeline.write_text("name: sql-bench\nbatch_size: 10000\nsteps:\n  - step: noop\n")
    run = RUNS / f"sql-{args.rows}"
    t0 = time.perf_counter()
    if not args.reuse or not (run / "stats.json").exists():
        subprocess.run([str(CURATOR), "run", str(pipeline), "-i", str(inputs / "*.parquet"), "-o", str(run), "-q", "-w", str(args.workers), "--overwrite"], check=True, stdout=subprocess.DEVNULL)
        ingest = time.perf_counter() - t0
        print(f"curator run (noop, {args.workers} workers): {ingest:.0f} s, {args.rows / ingest:,.0f} rows/s; run on disk {sum(p.stat().st_size for p in run.rglob('*.parquet')) / 2**20:.0f} MiB")
    old = RUNS / f"sql-{args.rows}-batch-groups"
    one_group_per_batch(run, old)
    curator_sql(old, "SELECT 1")  # rebuilds the copy's catalog for its place
    print(f"machine: {machine()}")
    print(f"row_group_rows=100000: {groups(run)[0]} files, {groups(run)[1]} row groups; one group per 2,000-row batch: {groups(old)[1]} row groups")
    # in-process: the connection `curator sql` opens (catalog.open_readonly), query time only,
    # interleaved so both layouts see the same machine load; then the CLI's wall time
    from curator import catalog

    connections = {"100k": catalog.open_readonly(run), "2k": catalog.open_readonly(old)}
    print(f"{'query (DuckDB time in curator sql, best of 5)':<48} {'100k groups':>12} {'2k groups':>10} {'ratio':>6} {'curator sql wall':>17}")
    for name, query in QUERIES.items():
        best = {k: float("inf") for k in connections}
        for _ in range(5):
            for k, connection in connections.items():
                t0 = time.perf_counter()
                connection.execute(query).fetchall()
                best[k] = min(best[k], time.perf_counter() - t0)
        wall = min(curator_sql(run, query) for _ in range(2))
        print(f"{name:<48} {best['100k']:>11.2f}s {best['2k']:>9.2f}s {best['2k'] / best['100k']:>5.2f}x {wall:>16.2f}s")
    start = min(curator_sql(run, "SELECT 1") for _ in range(2))
    print(f"{'(curator sql SELECT 1: CLI start-up)':<48} {'':>12} {'':>10} {'':>6} {start:>16.2f}s")


if __name__ == "__main__":
    main()
