"""Which student learns more per seed: fastText n-grams or a logistic regression on MiniLM sentence embeddings.

    python bench/eval_students.py [--labels FILE] [--seeds 25 50 100 200] [--repeats 5]

Seeds here are human labels (the DCLM dev set: good/bad Common Crawl
documents), so the comparison is the students' own, free of any teacher's
errors: each student is trained on k labelled documents drawn at random
(balanced), and scored by ROC-AUC on every other labelled document, averaged
over ``--repeats`` draws. fastText uses the settings curator picks for the
seed count (``auto_settings``); the regression C = 1, no tuning. Document
length is the baseline people compare against. The cost of each student is
its scoring throughput on the same documents, one core.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED_DATA, machine  # noqa: E402

from curator.embeddings import TextEmbedder  # noqa: E402
from curator.metrics import roc_auc  # noqa: E402
from curator_plugins.fasttext_quality import _positive_probability, auto_settings, normalise_one, train_supervised  # noqa: E402


def _auc(truth: np.ndarray, scores: np.ndarray) -> float:
    auc = roc_auc(truth, scores)
    if auc is None:  # the draws take both classes, so this is a bug, not a sample
        raise ValueError("ROC-AUC needs positives and negatives in the test split")
    return auc


def fasttext_auc(texts: list[str], y: np.ndarray, train: list[int], test: list[int], seed: int) -> float:
    lines = [f"__label__{'hq' if y[i] else 'lq'} {normalise_one(texts[i])}" for i in train]
    random.Random(seed).shuffle(lines)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as fh:
        fh.write("\n".join(lines) + "\n")
    model, _ = train_supervised(fh.name, **auto_settings(len(lines)), bucket=200_000, thread=1, seed=seed, verbose=0)
    Path(fh.name).unlink()
    return _auc(y[test] == 1, _positive_probability(model, [normalise_one(texts[i]) for i in test], "__label__hq"))


def embedding_auc(vectors: np.ndarray, y: np.ndarray, train: list[int], test: list[int]) -> float:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=1.0, max_iter=2000).fit(vectors[train], y[train])
    return _auc(y[test] == 1, model.predict_proba(vectors[test])[:, 1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--labels", type=Path, default=SHARED_DATA / "quality" / "dclm_human_dev.jsonl")
    ap.add_argument("--seeds", type=int, nargs="+", default=[25, 50, 100, 200])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--max-tokens", type=int, default=256)
    args = ap.parse_args()
    rows = [r for r in map(json.loads, args.labels.read_text().splitlines()) if r.get("label") in (0, 1)]
    texts = [r["text"] for r in rows]
    y = np.array([r["label"] for r in rows])
    print(f"students per seed, {len(rows)} human-labelled documents ({args.labels.name}); {machine()}")

    embedder = TextEmbedder(max_tokens=args.max_tokens, threads=1)
    started = time.perf_counter()
    vectors = embedder.embed(texts)
    embed_rate = len(texts) / (time.perf_counter() - started)
    lines = [normalise_one(t) for t in texts]
    model, _ = train_supervised_on(lines, y)
    started = time.perf_counter()
    for _ in range(20):
        model.predict(lines, k=-1)
    fasttext_rate = 20 * len(texts) / (time.perf_counter() - started)

    length = np.array([len(t) for t in texts], dtype=float)
    print(f"\n{'seeds':>6} {'fastText':>9} {'embedding':>10} {'length':>7}   (mean ROC-AUC on the other documents, {args.repeats} draws)")
    results = []
    for k in args.seeds:
        got: dict[str, list[float]] = {"fasttext": [], "embedding": [], "length": []}
        for r in range(args.repeats):
            rng = random.Random(1000 * k + r)
            pos = [i for i in range(len(rows)) if y[i] == 1]
            neg = [i for i in range(len(rows)) if y[i] == 0]
            train = rng.sample(pos, k // 2) + rng.sample(neg, k - k // 2)
            test = [i for i in range(len(rows)) if i not in set(train)]
            got["fasttext"].append(fasttext_auc(texts, y, train, test, r))
            got["embedding"].append(embedding_auc(vectors, y, train, test))
            got["length"].append(_auc(y[test] == 1, length[test]))
        means = {name: float(np.mean(v)) for name, v in got.items()}
        results.append({"seeds": k, **means})
        print(f"{k:>6} {means['fasttext']:>9.3f} {means['embedding']:>10.3f} {means['length']:>7.3f}")
    print(f"\nscoring cost, one core: fastText {fasttext_rate:,.0f} docs/s, MiniLM int8 ({args.max_tokens} tokens) {embed_rate:,.1f} docs/s = {fasttext_rate / embed_rate:,.0f}x slower")


def train_supervised_on(lines: list[str], y: np.ndarray):
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as fh:
        fh.write("\n".join(f"__label__{'hq' if label else 'lq'} {line}" for line, label in zip(lines, y)) + "\n")
    try:
        return train_supervised(fh.name, **auto_settings(len(lines)), bucket=200_000, thread=1, seed=0, verbose=0)
    finally:
        Path(fh.name).unlink()


if __name__ == "__main__":
    main()
