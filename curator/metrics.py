"""Agreement metrics for evaluating classifiers and LLM grades against labels."""

from __future__ import annotations

from typing import Any

import numpy as np


def roc_auc(labels: Any, scores: Any) -> float | None:
    """Area under the ROC curve via the rank-sum (Mann-Whitney U) identity, ties averaged."""
    from scipy.stats import rankdata

    labels = np.asarray(labels, dtype=bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = rankdata(np.asarray(scores, dtype=float))
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def binary_metrics(labels: Any, scores: Any, threshold: float) -> dict[str, Any]:
    """Precision, recall, F1, accuracy, ROC-AUC and the confusion matrix at a threshold."""
    labels = np.asarray(labels, dtype=bool)
    predicted = np.asarray(scores) >= threshold
    tp = int((predicted & labels).sum())
    fp = int((predicted & ~labels).sum())
    fn = int((~predicted & labels).sum())
    tn = int((~predicted & ~labels).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "roc_auc": roc_auc(labels, scores),
        "f1": f1,
        "precision": precision,
        "recall": recall,
        "accuracy": (tp + tn) / len(labels) if len(labels) else 0.0,
        "threshold": threshold,
        "confusion": {"tp": tp, "fp": fp, "fn": fn, "tn": tn},
        "n": int(len(labels)),
    }


def spearman(a: Any, b: Any) -> float | None:
    from scipy.stats import spearmanr

    if len(a) < 3:
        return None
    value = spearmanr(a, b).statistic
    return None if np.isnan(value) else float(value)


def cohen_kappa(a: Any, b: Any) -> float | None:
    """Cohen's kappa between two label sequences."""
    a, b = np.asarray(a), np.asarray(b)
    if len(a) == 0:
        return None
    categories = np.union1d(a, b)
    observed = float((a == b).mean())
    expected = float(sum((a == c).mean() * (b == c).mean() for c in categories))
    return None if expected == 1 else (observed - expected) / (1 - expected)


POSITIVE_LABELS = {"1", "true", "pos", "positive", "good", "hq", "yes"}


def binary_labels(values: Any) -> np.ndarray:
    """0/1 from labels written as numbers (> 0 is good), booleans or words (good/pos/true/yes/hq)."""
    out = []
    for v in values:
        if isinstance(v, bool):
            out.append(int(v))
        elif isinstance(v, (int, float)):
            out.append(int(v > 0))
        else:
            out.append(int(str(v).strip().lower() in POSITIVE_LABELS))
    return np.array(out, dtype=int)


def bootstrap_auc(labels: Any, scores: Any, n: int = 1000, seed: int = 0) -> tuple[float | None, float | None, float | None]:
    """ROC-AUC with a 95 % percentile bootstrap interval (documents resampled with replacement)."""
    labels, scores = np.asarray(labels, dtype=bool), np.asarray(scores, dtype=float)
    point = roc_auc(labels, scores)
    if point is None:
        return None, None, None
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n):
        idx = rng.integers(0, len(labels), len(labels))
        auc = roc_auc(labels[idx], scores[idx])
        if auc is not None:
            values.append(auc)
    return point, float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))
