"""ROC-AUC of fastText quality classifiers against human judgements (dclm_human_dev, 250 docs).

    python bench/eval_fasttext_human.py

1. 5-fold cross-validation of a classifier trained on the human labels
   themselves (the same training code as the fasttext_train step);
2. the DCLM-style classifier of pipelines/dclm_fasttext.yaml (reference text vs
   web text, no human labels) scored on all 250 documents;
3. document length alone, the baseline in shared/data/README.md (0.765).
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, SHARED_DATA  # noqa: E402

from curator.metrics import roc_auc  # noqa: E402
from curator_plugins.fasttext_quality import _positive_probability, normalise_one, train_supervised  # noqa: E402

HUMAN = SHARED_DATA / "quality" / "dclm_human_dev.jsonl"


def train(lines: list[str], folder: Path, **params):
    path = folder / "train.txt"
    path.write_text("\n".join(lines) + "\n")
    settings = {"wordNgrams": 2, "dim": 100, "epoch": 5, "lr": 0.1, "minCount": 1, "bucket": 200_000, "thread": 1, "seed": 1, "verbose": 0}
    settings.update(params)
    return train_supervised(str(path), **settings)[0]


def _auc(truth: np.ndarray, scores: np.ndarray) -> float:
    auc = roc_auc(truth, scores)
    if auc is None:  # every fold of the shuffled human set holds both labels, so this is a bug
        raise ValueError("ROC-AUC needs positives and negatives in the fold")
    return auc


def cross_validated(rows: list[dict], folds: int = 5, seed: int = 0, **params) -> tuple[float, list[float]]:
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    scores = np.zeros(len(rows))
    per_fold: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(folds):
            test = set(order[k::folds])
            lines = [f"__label__{'pos' if rows[i]['label'] == 1 else 'neg'} {normalise_one(rows[i]['text'])}" for i in order if i not in test]
            model = train(lines, Path(tmp), **params)
            idx = sorted(test)
            s = _positive_probability(model, [normalise_one(rows[i]["text"]) for i in idx], "__label__pos")
            scores[idx] = s
            per_fold.append(_auc(np.array([rows[i]["label"] == 1 for i in idx]), s))
    labels = np.array([r["label"] == 1 for r in rows])
    return _auc(labels, scores), per_fold


def main() -> None:
    rows = [json.loads(line) for line in HUMAN.open()]
    labels = np.array([r["label"] == 1 for r in rows])
    print(f"{HUMAN.name}: {len(rows)} documents, {labels.sum()} good / {(~labels).sum()} bad (human majority vote)")
    length = roc_auc(labels, np.array([len(r["text"]) for r in rows], dtype=float))
    print(f"document length alone                               ROC-AUC {length:.3f}")
    for epoch in (5, 25):
        pooled, folds = cross_validated(rows, epoch=epoch)
        print(f"fastText on human labels, 5-fold CV, epoch {epoch:<2}       ROC-AUC {np.mean(folds):.3f} mean of folds ({min(folds):.2f}-{max(folds):.2f}), {pooled:.3f} pooled")

    from curator.config import load_pipeline
    from curator.plugins import get_registry
    from curator.runner import run_pipeline

    with tempfile.TemporaryDirectory() as tmp:
        pipe = load_pipeline(REPO / "pipelines" / "dclm_fasttext.yaml", get_registry())
        pipe.steps = pipe.steps[:2]  # train + score; no top-10% cut
        run_pipeline(pipe, Path(tmp) / "run", registry=get_registry(), inputs=[str(HUMAN)], progress=False)
        import duckdb

        con = duckdb.connect(str(Path(tmp) / "run" / "curator.duckdb"), read_only=True)
        got = con.execute("SELECT label, quality__score FROM documents").fetchall()
        auc = roc_auc(np.array([g[0] == 1 for g in got]), np.array([g[1] if g[1] is not None else 0.0 for g in got]))
        print(f"pipelines/dclm_fasttext.yaml model (reference vs web) ROC-AUC {auc:.3f} (no human labels used)")


if __name__ == "__main__":
    main()
