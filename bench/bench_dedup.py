"""Dedup speed and memory, curator vs datatrove side by side; language_id vs raw fastText predict.

    .venv/bin/python bench/bench_dedup.py                         # curator on 20k and 200k documents, datatrove on 20k, then language_id
    .venv/bin/python bench/bench_dedup.py --datatrove-max 200000  # datatrove on 200k too (~45 CPU minutes)
    .venv/bin/python bench/bench_dedup.py --docs 20000 --sides curator --no-lid

**Dedup.** One corpus per size, built here from real text and cached under
bench/_data: "unique" documents are real WebOrganizer paragraphs drawn at random (each
document's length drawn from the real length distribution), then 10 % exact
copies (half of them re-cased / re-spaced) and 10 % near copies (1, 2 or 3 %
of the words replaced, true 5-gram Jaccard about 0.90 / 0.82 / 0.75) of random
documents are injected and everything is shuffled into Parquet shards of
2,500 documents (row groups of 1,000): 10x the documents is 10x the shards.

Each side runs in its own subprocess on the same shards, exact then fuzzy
dedup with the same settings (normalised text for the exact hash; word
5-grams, 14 bands x 8 rows, datatrove's defaults):

* curator: ``exact_dedup`` + ``minhash_dedup``, local executor, one worker;
* datatrove: ``ExactDedupSignature`` -> ``ExactFindDedups`` -> ``ExactDedupFilter``,
  then ``MinhashDedupSignature`` -> ``MinhashDedupBuckets`` -> ``MinhashDedupCluster``
  -> ``MinhashDedupFilter``, ``LocalPipelineExecutor`` with one worker.

Measured from the parent with ``os.wait4`` on each child: CPU seconds
(user + sys, every thread and child process included), so docs/s per core =
documents / CPU seconds, and peak RSS (``ru_maxrss``) of the whole process.
Recall per edit level counts injected copies whose family (original +
copies) ends with exactly one survivor. A family with no survivor was removed
as a near-copy of another document: random draws of real paragraphs make
some natural near-duplicates (short documents of one or two common
paragraphs), so this counts those and false positives alike; for curator,
whose reasons name the kept document, the true Jaccard of a sample of
rejections with the document named tells which.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA, RUNS, SHARED_DATA, load_dolma, machine  # noqa: E402

WEBORG = SHARED_DATA / "web" / "weborganizer_examples.jsonl.gz"
BANDS, ROWS, NGRAM = 14, 8, 5
DOCS_PER_SHARD = 2_500  # fixed shard size, as a crawl comes: a bigger corpus is more shards, not bigger ones
NEAR_LEVELS = (1, 2, 3)  # % of words replaced


# ---------------------------------------------------------------- corpus


def build_corpus(docs: int, seed: int = 0) -> tuple[Path, dict[str, str]]:
    """``docs`` documents in Parquet shards of 2,500; returns (folder, copy id -> edit label). Cached."""
    folder = DATA / f"dedup-{docs}-{DOCS_PER_SHARD}"
    truth_path = folder / "truth.json"
    if truth_path.exists():
        return folder, json.loads(truth_path.read_text())
    rng = random.Random(seed)
    paragraphs: list[str] = []
    lengths: list[int] = []
    with gzip.open(WEBORG, "rt", encoding="utf-8") as fh:
        for line in fh:
            text = json.loads(line)["text"]
            lengths.append(min(len(text.split()), 2000))
            paragraphs.extend(p for p in text.split("\n") if len(p.split()) >= 3)
    n_exact = n_near = docs // 10
    n_unique = docs - n_exact - n_near
    rows = []
    for i in range(n_unique):
        # real paragraphs drawn at random (runs of consecutive ones would overlap between documents
        # and make near-duplicates nobody injected)
        target, n_words, parts = rng.choice(lengths), 0, []
        while n_words < max(target, 20):
            p = rng.choice(paragraphs)
            parts.append(p)
            n_words += len(p.split())
        rows.append({"id": f"u{i:07d}", "text": "\n".join(parts), "family": f"u{i:07d}"})
    truth = {}
    for i in range(n_exact):
        orig = rows[rng.randrange(n_unique)]
        text = orig["text"] if i % 2 else "  " + orig["text"].upper().replace("\n", "\n\n") + " "
        rows.append({"id": f"e{i:07d}", "text": text, "family": orig["family"]})
        truth[f"e{i:07d}"] = "exact" if i % 2 else "exact, re-cased"
    for i in range(n_near):
        orig = rows[rng.randrange(n_unique)]
        pct = NEAR_LEVELS[i % len(NEAR_LEVELS)]
        words = orig["text"].split(" ")
        for j in rng.sample(range(len(words)), max(1, len(words) * pct // 100)):
            words[j] = rng.choice(words)
        rows.append({"id": f"n{i:07d}", "text": " ".join(words), "family": orig["family"]})
        truth[f"n{i:07d}"] = f"near, {pct} % replaced"
    rng.shuffle(rows)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for k in range(0, len(rows), DOCS_PER_SHARD):
        part = rows[k : k + DOCS_PER_SHARD]
        table = pa.table({"id": [r["id"] for r in part], "text": [r["text"] for r in part]})
        pq.write_table(table, tmp / f"shard-{k // DOCS_PER_SHARD:04d}.parquet", compression="zstd", row_group_size=1_000)
    (tmp / "families.json").write_text(json.dumps({r["id"]: r["family"] for r in rows}))
    (tmp / "truth.json").write_text(json.dumps(truth))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder, truth


# ---------------------------------------------------------------- the two sides (each runs in a child process)


def run_curator(corpus: Path, out: Path) -> dict:
    from curator.config import Pipeline, parse_pipeline
    from curator.plugins import get_registry
    from curator.runner import run_pipeline

    text = f"""
steps:
  - step: exact_dedup
    name: exact
    mode: normalised
  - step: minhash_dedup
    name: fuzzy
    ngram: {NGRAM}
    bands: {BANDS}
    rows: {ROWS}
"""
    options, specs = parse_pipeline(text, "bench")
    run_pipeline(Pipeline(options, specs, "bench"), out, registry=get_registry(), inputs=[str(p) for p in sorted(corpus.glob("shard-*.parquet"))], progress=False, overwrite=True)
    stats = json.loads((out / "stats.json").read_text())
    seconds = {f["step"]: round(f.get("seconds") or 0, 1) for f in stats.get("funnel", []) if f.get("seconds")}
    for result in (out / "artifacts").glob("*/result.json"):
        seconds[result.parent.name] = round(json.loads(result.read_text())["seconds"], 1)
    return {"seconds_by_step": seconds}


def _normalised(doc) -> str:
    # the same normalisation as curator's mode: normalised (lowercase, whitespace collapsed)
    return " ".join(doc.text.lower().split())


def run_datatrove(corpus: Path, out: Path) -> dict:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.exact_dedup import ExactDedupConfig, ExactDedupFilter, ExactDedupSignature, ExactFindDedups
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.readers import ParquetReader
    from datatrove.pipeline.writers import ParquetWriter

    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    exact = ExactDedupConfig(content_getter=_normalised)
    fuzzy = MinhashConfig(n_grams=NGRAM, num_buckets=BANDS, hashes_per_bucket=ROWS)

    def reader(folder: Path) -> ParquetReader:
        return ParquetReader(str(folder), id_key="id", text_key="text", glob_pattern="*.parquet")

    stages = [
        ("exact signature", 1, [reader(corpus), ExactDedupSignature(output_folder=str(out / "esig"), config=exact)]),
        ("exact find", 1, [ExactFindDedups(data_folder=str(out / "esig"), output_folder=str(out / "edups"), config=exact)]),
        (
            "exact filter",
            1,
            [reader(corpus), ExactDedupFilter(data_folder=str(out / "edups"), config=exact, exclusion_writer=ParquetWriter(str(out / "exact_removed"))), ParquetWriter(str(out / "exact_kept"))],
        ),
        ("minhash signature", 1, [reader(out / "exact_kept"), MinhashDedupSignature(output_folder=str(out / "sigs"), config=fuzzy)]),
        ("minhash buckets", BANDS, [MinhashDedupBuckets(input_folder=str(out / "sigs"), output_folder=str(out / "buckets"), config=fuzzy)]),
        ("minhash cluster", 1, [MinhashDedupCluster(input_folder=str(out / "buckets"), output_folder=str(out / "remove"), config=fuzzy, save_cluster_id=True)]),
        (
            "minhash filter",
            1,
            [reader(out / "exact_kept"), MinhashDedupFilter(input_folder=str(out / "remove"), exclusion_writer=ParquetWriter(str(out / "fuzzy_removed"))), ParquetWriter(str(out / "kept"))],
        ),
    ]
    seconds = {}
    for i, (name, tasks, pipeline) in enumerate(stages):
        start = time.perf_counter()
        LocalPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=1, logging_dir=str(out / f"logs{i}")).run()
        seconds[name] = round(time.perf_counter() - start, 1)
    return {"seconds_by_step": seconds}


def child(side: str, corpus: Path, out: Path) -> None:
    start = time.perf_counter()
    info = (run_curator if side == "curator" else run_datatrove)(corpus, out)
    info["wall"] = time.perf_counter() - start
    print("RESULT " + json.dumps(info), flush=True)


# ---------------------------------------------------------------- parent: measure, score, print


def raise_if(code: int, side: str, stderr: str) -> None:
    if code:
        raise SystemExit(f"{side} failed ({code}):\n{stderr[-4000:]}")


def survivors(side: str, out: Path) -> tuple[set[str], int, int]:
    """(surviving ids, removed by exact, removed by fuzzy)."""
    import duckdb

    if side == "curator":
        with duckdb.connect(str(out / "curator.duckdb"), read_only=True) as con:
            kept = {r[0] for r in con.execute("SELECT id FROM kept").fetchall()}
            removed = dict(con.execute("SELECT reject_step, count(*) FROM rejected GROUP BY 1").fetchall())
        return kept, removed.get("exact", 0), removed.get("fuzzy", 0)

    def ids(folder: Path) -> list[str]:
        return [i for p in folder.glob("*.parquet") for i in pq.read_table(p, columns=["id"]).column("id").to_pylist()]

    return set(ids(out / "kept")), len(ids(out / "exact_removed")), len(ids(out / "fuzzy_removed"))


def named_precision(corpus: Path, out: Path, sample: int = 2_000) -> tuple[float, int]:
    """curator only (its reasons name the kept document): share of a sample of fuzzy rejections whose
    true word 5-gram Jaccard with the document they name is >= 0.5."""
    import duckdb

    from curator_plugins.dedup import jaccard

    with duckdb.connect(str(out / "curator.duckdb"), read_only=True) as con:
        pairs = con.execute("SELECT id, split_part(reject_reason, ':', 2) FROM rejected WHERE reject_step = 'fuzzy' ORDER BY hash(id) LIMIT ?", [sample]).fetchall()
    wanted = {i for pair in pairs for i in pair}
    text = {}
    for p in corpus.glob("shard-*.parquet"):
        t = pq.read_table(p)
        for i, x in zip(t.column("id").to_pylist(), t.column("text").to_pylist()):
            if i in wanted:
                text[i] = x
    good = sum(jaccard(text[a], text[b], NGRAM) >= 0.5 for a, b in pairs)
    return (good / len(pairs) if pairs else 1.0), len(pairs)


def score(corpus: Path, truth: dict[str, str], kept: set[str]) -> tuple[dict[str, float], int]:
    family = json.loads((corpus / "families.json").read_text())
    alive = Counter(family[i] for i in kept)
    found: defaultdict[str, list[int]] = defaultdict(lambda: [0, 0])
    for copy_id, label in truth.items():
        found[label][1] += 1
        found[label][0] += alive[family[copy_id]] == 1
    lost = sum(1 for f in set(family.values()) if not alive[f])
    return {label: f / n for label, (f, n) in sorted(found.items())}, lost


def run_side(side: str, corpus: Path, out: Path) -> dict:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TQDM_DISABLE": "1"}
    proc = subprocess.Popen([sys.executable, __file__, "--child", side, "--corpus", str(corpus), "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    # read the pipes from threads so a chatty child never blocks, then reap it with wait4 for its rusage
    chunks: dict[str, str] = {}
    threads = [threading.Thread(target=lambda n=n, f=f: chunks.__setitem__(n, f.read())) for n, f in (("out", proc.stdout), ("err", proc.stderr))]
    for t in threads:
        t.start()
    _, status, usage = os.wait4(proc.pid, 0)
    for t in threads:
        t.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    raise_if(proc.returncode, side, chunks.get("err", ""))
    result = json.loads(next(line[7:] for line in chunks["out"].splitlines() if line.startswith("RESULT ")))
    result["cpu"] = usage.ru_utime + usage.ru_stime
    result["rss_mib"] = usage.ru_maxrss / 1024
    return result


def bench_dedup(sizes: list[int], all_sides: list[str], datatrove_max: int) -> None:
    for docs in sizes:
        sides = [s for s in all_sides if s != "datatrove" or docs <= datatrove_max]
        corpus, truth = build_corpus(docs)
        assert sum(pq.read_metadata(p).num_rows for p in corpus.glob("shard-*.parquet")) == docs
        mb = sum(sum(len(t.encode()) for t in pq.read_table(p, columns=["text"]).column("text").to_pylist()) for p in corpus.glob("shard-*.parquet")) / 1e6
        print(
            f"\n## {docs:,} documents ({mb:,.0f} MB of text, {len(list(corpus.glob('shard-*.parquet')))} shards; {sum(1 for v in truth.values() if v.startswith('exact')):,} exact + "
            f"{sum(1 for v in truth.values() if v.startswith('near')):,} near copies injected)"
        )
        results = {}
        for side in sides:
            out = RUNS / f"dedup-{docs}-{side}"
            r = run_side(side, corpus, out)
            kept, exact_removed, fuzzy_removed = survivors(side, out)
            recall, lost = score(corpus, truth, kept)
            results[side] = {**r, "kept": len(kept), "exact_removed": exact_removed, "fuzzy_removed": fuzzy_removed, "recall": recall, "lost": lost}
            results[side]["named_precision"] = named_precision(corpus, out) if side == "curator" else None
            print(f"{side}: {json.dumps(results[side], default=str)}", flush=True)
        print()
        print("| | " + " | ".join(sides) + (" | curator / datatrove |" if len(sides) == 2 else " |"))
        print("|---|" + "---|" * (len(sides) + (len(sides) == 2)))

        # row() and its lambdas run at once; the loop's values are bound so they cannot outlive this iteration
        def row(label, fn, ratio=None, results=results, sides=sides):
            cells = [fn(results[s]) for s in sides]
            extra = f" | {ratio(results['curator'], results['datatrove'])}" if ratio and len(sides) == 2 else (" |" if len(sides) == 2 else "")
            print(f"| {label} | " + " | ".join(cells) + extra + " |")

        row("CPU seconds (user+sys, whole process)", lambda r: f"{r['cpu']:.1f}")
        row("wall seconds", lambda r: f"{r['wall']:.1f}")
        row("**docs/s per core**", lambda r, docs=docs: f"{docs / r['cpu']:,.0f}", lambda c, d: f"**{d['cpu'] / c['cpu']:.2f}x**")
        row("**peak RSS, MiB**", lambda r: f"{r['rss_mib']:,.0f}", lambda c, d: f"{c['rss_mib'] / d['rss_mib']:.2f}x")
        row("removed by exact", lambda r: f"{r['exact_removed']:,}")
        row("removed by fuzzy", lambda r: f"{r['fuzzy_removed']:,}")
        row("kept", lambda r: f"{r['kept']:,}")
        for label in sorted(results[sides[0]]["recall"]):
            row(f"recall: {label}", lambda r, label=label: f"{r['recall'][label]:.3f}")
        row("families with no survivor (removed as a near-copy of another: a natural duplicate or a false positive)", lambda r: f"{r['lost']:,}")
        row(
            "fuzzy rejections whose true 5-gram Jaccard with the document named is >= 0.5 (sample)",
            lambda r: f"{r['named_precision'][0]:.3f} of {r['named_precision'][1]:,}" if r["named_precision"] else "(no document named)",
        )
        for side in sides:
            print(f"\n{side} seconds by step: {results[side]['seconds_by_step']}")


# ---------------------------------------------------------------- language_id


def bench_lid(repeat: int = 3) -> None:
    from curator_plugins.language_id import LanguageId

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
    print(f"\nlanguage_id: raw predict {len(texts) / best_raw:,.0f} docs/s, stage {len(texts) / best_step:,.0f} docs/s, ratio {best_raw / best_step:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, nargs="+", default=[20_000, 200_000], help="corpus sizes (documents)")
    ap.add_argument("--sides", nargs="+", default=["curator", "datatrove"], choices=["curator", "datatrove"])
    ap.add_argument(
        "--datatrove-max", type=int, default=20_000, help="run datatrove only on corpora up to this size (its MinHash signature stage does ~70 docs/s per core here: 200k documents is ~50 CPU minutes)"
    )
    ap.add_argument("--no-lid", action="store_true", help="skip the language_id benchmark")
    ap.add_argument("--child", choices=["curator", "datatrove"], help=argparse.SUPPRESS)
    ap.add_argument("--corpus", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.corpus, args.out)
        return
    print(f"# {machine()}")
    bench_dedup(args.docs, args.sides, args.datatrove_max)
    if not args.no_lid:
        bench_lid()


if __name__ == "__main__":
    main()
