"""Near-duplicate detection quality: curator's minhash_dedup vs datatrove's MinHash, per edit level.

The test set is built from real WebOrganizer pages: N originals and, for a
share of them, copies with known edits (words replaced, deleted or shuffled
locally at 1-20 %, boilerplate added, the end truncated). A copy is *found*
when it lands in its original's cluster. Precision: of the documents a
method removes, the share whose cluster holds only members of one family
(an original and its copies) -- pre-existing near-duplicates among the
originals are counted as correct when their true 5-gram Jaccard is >= 0.7.

    .venv/bin/python bench/eval_dedup.py [--originals 1500]
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import shutil
import sys
from collections import defaultdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RUNS, SHARED_DATA, machine, timer  # noqa: E402

from curator.config import load_pipeline  # noqa: E402
from curator.plugins import get_registry  # noqa: E402
from curator.runner import run_pipeline  # noqa: E402
from curator_plugins.dedup import jaccard  # noqa: E402

WEBORG = SHARED_DATA / "web" / "weborganizer_examples.jsonl.gz"
BOILERPLATE = "Share this article on Facebook Twitter LinkedIn or by Email. Subscribe to our newsletter for weekly updates. Copyright 2024 all rights reserved. Privacy policy and terms of use."
EDITS = [
    ("replace", 1),
    ("replace", 3),
    ("replace", 5),
    ("replace", 10),
    ("replace", 20),
    ("delete", 5),
    ("delete", 20),
    ("shuffle", 5),
    ("shuffle", 20),
    ("boilerplate", 0),
    ("truncate", 10),
    ("truncate", 30),
]


def edit(words: list[str], kind: str, pct: int, rng: random.Random) -> list[str]:
    words = list(words)
    k = max(1, len(words) * pct // 100)
    if kind == "replace":
        for i in rng.sample(range(len(words)), k):
            words[i] = rng.choice(words)
    elif kind == "delete":
        drop = set(rng.sample(range(len(words)), k))
        words = [w for i, w in enumerate(words) if i not in drop]
    elif kind == "shuffle":  # k swaps of neighbouring words
        for i in rng.sample(range(len(words) - 1), k):
            words[i], words[i + 1] = words[i + 1], words[i]
    elif kind == "boilerplate":
        words = BOILERPLATE.split() + words + BOILERPLATE.split()
    elif kind == "truncate":
        words = words[: len(words) * (100 - pct) // 100]
    return words


def build(originals: int, seed: int = 0) -> tuple[list[dict], dict[str, tuple[str, str]]]:
    rng = random.Random(seed)
    rows: list[dict] = []
    with gzip.open(WEBORG, "rt", encoding="utf-8") as fh:
        for line in fh:
            r = json.loads(line)
            if 100 <= len(r["text"].split()) <= 3000:
                rows.append({"id": f"o{len(rows):05d}", "text": r["text"]})
            if len(rows) >= originals:
                break
    truth = {}  # copy id -> (original id, edit label)
    copies = []
    for i, orig in enumerate(rng.sample(rows, len(rows) // 2)):
        kind, pct = EDITS[i % len(EDITS)]
        copy_id = f"c{i:05d}"
        copies.append({"id": copy_id, "text": " ".join(edit(orig["text"].split(), kind, pct, rng))})
        truth[copy_id] = (orig["id"], f"{kind} {pct}%" if pct else kind)
    return rows + copies, truth


def curator_clusters(rows: list[dict], folder: Path, bands: int, rows_per_band: int) -> tuple[dict[str, str], set[str], float]:
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), folder / "input.parquet")
    yaml = folder / "p.yaml"
    yaml.write_text(f"steps:\n  - step: minhash_dedup\n    name: fuzzy\n    bands: {bands}\n    rows: {rows_per_band}\n")
    pipe = load_pipeline(yaml, get_registry())
    with timer() as t:
        run_pipeline(pipe, folder / "run", inputs=[str(folder / "input.parquet")], progress=False)
    groups = pq.read_table(folder / "run" / "artifacts" / "fuzzy_groups" / "fuzzy_groups.parquet").to_pylist()
    cluster = {g["id"]: g["cluster"] for g in groups}
    removed = {g["id"] for g in groups if g["id"] != g["kept_id"]}
    return cluster, removed, t.seconds


def datatrove_clusters(rows: list[dict], folder: Path, bands: int, rows_per_band: int) -> tuple[dict[str, str], set[str], float]:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.readers import ParquetReader
    from datatrove.pipeline.writers import ParquetWriter

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "in").mkdir(exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), folder / "in" / "input.parquet")
    config = MinhashConfig(num_buckets=bands, hashes_per_bucket=rows_per_band)
    reader = ParquetReader(str(folder / "in"), id_key="id", text_key="text")
    stages = [
        [reader, MinhashDedupSignature(output_folder=str(folder / "sigs"), config=config)],
        [MinhashDedupBuckets(input_folder=str(folder / "sigs"), output_folder=str(folder / "buckets"), config=config)],
        [MinhashDedupCluster(input_folder=str(folder / "buckets"), output_folder=str(folder / "remove"), config=config, save_cluster_id=True)],
        [reader, MinhashDedupFilter(input_folder=str(folder / "remove"), load_cluster_ids=True, exclusion_writer=ParquetWriter(str(folder / "removed"))), ParquetWriter(str(folder / "kept"))],
    ]
    with timer() as t:
        for i, pipeline in enumerate(stages):
            tasks = bands if i == 1 else 1
            LocalPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=1, logging_dir=str(folder / f"logs{i}")).run()
    cluster, removed = {}, set()
    for sub, is_removed in (("kept", False), ("removed", True)):
        for path in (folder / sub).glob("*.parquet"):
            for doc in pq.read_table(path).to_pylist():
                cid = doc["metadata"].get("minhash_cluster_id", -1)
                if cid != -1:
                    cluster[doc["id"]] = str(cid)
                if is_removed:
                    removed.add(doc["id"])
    return cluster, removed, t.seconds


def score(rows, truth, cluster, removed) -> tuple[dict[str, float], float, int]:
    text = {r["id"]: r["text"] for r in rows}
    family = {r["id"]: truth[r["id"]][0] if r["id"] in truth else r["id"] for r in rows}
    found: defaultdict[str, list[int]] = defaultdict(lambda: [0, 0])
    for copy_id, (orig, label) in truth.items():
        found[label][1] += 1
        found[label][0] += copy_id in cluster and cluster.get(orig) == cluster[copy_id]
    members = defaultdict(list)
    for doc_id, c in cluster.items():
        members[c].append(doc_id)
    correct = 0
    for doc_id in removed:
        others = [m for m in members[cluster[doc_id]] if m != doc_id]
        # right if it shares a family with a member, or truly is a near-copy of one (originals repeat on the web)
        correct += any(family[m] == family[doc_id] or jaccard(text[m], text[doc_id], 5) >= 0.7 for m in others)
    recall = {label: f / n for label, (f, n) in found.items()}
    return recall, (correct / len(removed) if removed else 1.0), len(removed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--originals", type=int, default=1500)
    args = ap.parse_args()
    rows, truth = build(args.originals)
    print(f"# {machine()}; {len(rows)} documents ({args.originals} WebOrganizer originals + {len(truth)} edited copies)")
    labels = []
    for kind, pct in EDITS:
        label = f"{kind} {pct}%" if pct else kind
        jac = [jaccard(next(r["text"] for r in rows if r["id"] == o), next(r["text"] for r in rows if r["id"] == c), 5) for c, (o, lab) in list(truth.items()) if lab == label][:20]
        labels.append((label, sum(jac) / len(jac)))
    out = RUNS / "eval_dedup"
    shutil.rmtree(out, ignore_errors=True)
    results = {}
    for name, fn, b, r in (("curator 14x12", curator_clusters, 14, 12), ("curator 14x8", curator_clusters, 14, 8), ("datatrove 14x8", datatrove_clusters, 14, 8)):
        cluster, removed, seconds = fn(rows, out / name.replace(" ", "-"), b, r)
        results[name] = (*score(rows, truth, cluster, removed), seconds)
    names = list(results)
    print("| edit | mean 5-gram Jaccard | " + " | ".join(f"recall {n}" for n in names) + " |")
    print("|---|---|" + "---|" * len(names))
    for label, jac in labels:
        print(f"| {label} | {jac:.2f} | " + " | ".join(f"{results[n][0][label]:.2f}" for n in names) + " |")
    print("| **precision** (removed) | | " + " | ".join(f"{results[n][1]:.3f} ({results[n][2]})" for n in names) + " |")
    print("| seconds | | " + " | ".join(f"{results[n][3]:.1f}" for n in names) + " |")


if __name__ == "__main__":
    main()
