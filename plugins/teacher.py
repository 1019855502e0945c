"""Teachers and students: cheap signals that judge documents, and how several are combined into one score.

Shared by the quality loop (``llm_seed_selector`` is the teacher,
``quality_student`` / ``quality_score`` the student) and usable by any step
that needs to label with more than one weak judge.

A *signal* turns texts into one number per text, higher = better:

* ``length``     log of the character count (long pages are rarely spam);
* ``lines``      share of lines that end a sentence, mean words per line, share of letters;
* ``fasttext``   P(label) from any fastText model: DCLM's reference-vs-web classifier;
* ``kenlm``      −log perplexity under a SentencePiece + KenLM model of clean text (CCNet);
* ``llm_grade``  the LLM's expected rubric grade (computed by the seed selector, not here);
* ``llm_loss``   −mean token loss of the document under the embedded LLM.

A :class:`Combiner` standardises the signals and weighs them: fitted on
human labels when there are some (L2-regularised logistic regression: with
50 labels a few weights are all that can be learned), else an unweighted
mean of the standardised signals, each pointing the way it is known to.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from curator.errors import ConfigError


class FastTextSignal(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field(description="fastText .bin", json_schema_extra={"path": True})
    label: str = Field("__label__pos", description="label whose probability is the signal")
    name: str = Field("fasttext", description="signal name (several fastText signals need distinct names)")


class KenlmSignal(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lm: str = Field(description="KenLM .bin/.arpa", json_schema_extra={"path": True})
    sp: str = Field(description="SentencePiece .model", json_schema_extra={"path": True})
    name: str = Field("kenlm")


class Signals(BaseModel):
    """Which signals judge a document (the ``signals:`` block of the teacher and the student)."""

    model_config = ConfigDict(extra="forbid")
    length: bool = Field(True, description="log character count")
    lines: bool = Field(True, description="line statistics: sentence-final share, words per line, letter share")
    fasttext: list[FastTextSignal] = Field(default_factory=list, description="fastText classifiers, e.g. reference-vs-web")
    kenlm: KenlmSignal | None = Field(None, description="SentencePiece + KenLM model of clean text")
    llm_loss: bool = Field(False, description="the embedded LLM's mean token loss (about 1 s per document on 2 cores)")
    llm_loss_tokens: int = Field(256, ge=16, description="tokens of each document the loss is measured on")

    def cheap(self) -> Signals:
        """The same signals without the LLM: what a student can afford on every document."""
        return self.model_copy(update={"llm_loss": False})


def _line_stats(text: str) -> tuple[float, float, float]:
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    if not lines:
        return 0.0, 0.0, 0.0
    ends = sum(1 for line in lines if line[-1] in ".!?\"'”’)") / len(lines)
    words = sum(len(line.split()) for line in lines) / len(lines)
    letters = sum(1 for ch in text if ch.isalpha()) / max(1, len(text))
    return ends, math.log1p(words), letters


class SignalScorer:
    """Computes the configured signals for lists of texts; models load on first use."""

    def __init__(self, signals: Signals) -> None:
        self.signals = signals
        self._fasttext: dict[str, tuple[Any, str]] = {}
        self._kenlm: Any = None
        self._loss: Any = None

    def names(self) -> list[str]:
        s = self.signals
        names = []
        if s.length:
            names.append("length")
        if s.lines:
            names += ["sentence_lines", "words_per_line", "letters"]
        names += [f.name for f in s.fasttext]
        if s.kenlm:
            names.append(s.kenlm.name)
        if s.llm_loss:
            names.append("llm_loss")
        return names

    def score(self, texts: list[str | None]) -> dict[str, np.ndarray]:
        s = self.signals
        docs = [t or "" for t in texts]
        out: dict[str, np.ndarray] = {}
        if s.length:
            out["length"] = np.log1p(np.array([len(t) for t in docs], dtype=float))
        if s.lines:
            stats = np.array([_line_stats(t) for t in docs], dtype=float).reshape(len(docs), 3)
            out["sentence_lines"], out["words_per_line"], out["letters"] = stats[:, 0], stats[:, 1], stats[:, 2]
        for spec in s.fasttext:
            out[spec.name] = self._fasttext_scores(spec, docs)
        if s.kenlm:
            out[s.kenlm.name] = self._kenlm_scores(s.kenlm, docs)
        if s.llm_loss:
            out["llm_loss"] = -self._llm_loss(docs)
        return out

    def _fasttext_scores(self, spec: FastTextSignal, texts: list[str]) -> np.ndarray:
        import pyarrow as pa

        from curator_plugins.fasttext_quality import _load_fasttext, predict_scores, prepare_lines

        if spec.name not in self._fasttext:
            label = spec.label if spec.label.startswith("__label__") else f"__label__{spec.label}"
            try:
                self._fasttext[spec.name] = (_load_fasttext().load_model(spec.model), label)
            except ValueError as exc:
                raise ConfigError(f"signal {spec.name!r}: cannot load fastText model {spec.model!r}: {exc}") from None
        model, label = self._fasttext[spec.name]
        lines, _ = prepare_lines(pa.array(texts, pa.string()), 100_000)
        return predict_scores(model, lines, label)[0]

    def _kenlm_scores(self, spec: KenlmSignal, texts: list[str]) -> np.ndarray:
        from curator_plugins.perplexity import PerplexityModel

        if self._kenlm is None:
            self._kenlm = PerplexityModel(spec.lm, spec.sp)
        ppl = self._kenlm.score_documents(texts, 10_000)
        return -np.log(np.where(np.isfinite(ppl) & (ppl > 0), ppl, 1e6))

    def _llm_loss(self, texts: list[str]) -> np.ndarray:
        from curator.llm.embedded import TokenLoss

        if self._loss is None:
            self._loss = TokenLoss(self.signals.llm_loss_tokens)
        return np.array([self._loss.mean_loss(t) for t in texts], dtype=float)

    def close(self) -> None:
        if self._loss is not None:
            self._loss.close()
            self._loss = None


def as_matrix(signals: dict[str, np.ndarray], names: list[str]) -> np.ndarray:
    return np.column_stack([np.asarray(signals[n], dtype=float) for n in names]) if names else np.zeros((0, 0))


class Combiner:
    """Standardised signals -> one score in (0, 1).

    ``fit(X, y)`` with human labels learns a logistic regression; ``unsupervised``
    gives every signal the same weight. Stored as plain JSON (``to_dict``) so a
    student can apply it anywhere without pickles.
    """

    def __init__(self, names: list[str], mean: np.ndarray, std: np.ndarray, weights: np.ndarray, intercept: float, kind: str) -> None:
        self.names, self.mean, self.std, self.weights, self.intercept, self.kind = names, mean, std, weights, intercept, kind

    @classmethod
    def unsupervised(cls, names: list[str], X: np.ndarray) -> Combiner:
        mean, std = _moments(X)
        weights = np.full(len(names), 1.0 / max(1, len(names)))
        return cls(names, mean, std, weights, 0.0, "mean of standardised signals")

    @classmethod
    def fit(cls, names: list[str], X: np.ndarray, y: np.ndarray, C: float = 0.1, sample_weight: np.ndarray | None = None) -> Combiner:
        from sklearn.linear_model import LogisticRegression

        mean, std = _moments(X)
        model = LogisticRegression(C=C, max_iter=1000).fit(_standardise(X, mean, std), y.astype(int), sample_weight=sample_weight)
        return cls(names, mean, std, model.coef_[0], float(model.intercept_[0]), f"logistic regression on {len(y)} labels (C={C})")

    def decision(self, X: np.ndarray) -> np.ndarray:
        return _standardise(X, self.mean, self.std) @ self.weights + self.intercept

    def score(self, X: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.decision(X)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "names": self.names,
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "weights": self.weights.tolist(),
            "intercept": self.intercept,
            "kind": self.kind,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Combiner:
        return cls(list(data["names"]), np.array(data["mean"]), np.array(data["std"]), np.array(data["weights"]), float(data["intercept"]), data["kind"])


def _clean(X: np.ndarray) -> np.ndarray:
    # a signal that could not be computed for a document counts as average, not as extreme
    return np.where(np.isfinite(X), X, np.nan)


def _standardise(X: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    # a signal missing for a document (too short to measure, model failed) sits at the mean
    return np.nan_to_num((_clean(X) - mean) / std, nan=0.0)


def _moments(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    X = _clean(X)
    mean = np.nan_to_num(np.nanmean(X, axis=0)) if len(X) else np.zeros(X.shape[1])
    std = np.nan_to_num(np.nanstd(X, axis=0)) if len(X) else np.ones(X.shape[1])
    return mean, np.where(std > 1e-12, std, 1.0)


def signal_report(names: list[str], X: np.ndarray, y: np.ndarray, C: float = 0.1, repeats: int = 20, seed: int = 0) -> dict[str, Any]:
    """How well each signal and their combination agree with human labels, and what each signal adds.

    ``alone``: ROC-AUC of the signal by itself; ``combined``: cross-validated
    ROC-AUC of the logistic combination (5 folds, repeated); ``adds``: how much
    the combination loses without that signal (the same folds).
    """
    from curator.metrics import roc_auc

    alone = {n: roc_auc(y, X[:, i]) for i, n in enumerate(names)}
    full = cross_validated_auc(X, y, C, repeats, seed)
    adds = {}
    for i, n in enumerate(names):
        if len(names) > 1:
            without = cross_validated_auc(np.delete(X, i, axis=1), y, C, repeats, seed)
            adds[n] = None if full is None or without is None else round(full - without, 4)
    return {"n": int(len(y)), "alone": alone, "combined_cv_auc": full, "adds": adds}


def cross_validated_auc(X: np.ndarray, y: np.ndarray, C: float, repeats: int, seed: int, folds: int = 5) -> float | None:
    """Mean ROC-AUC of the logistic combination over repeated stratified k-fold splits."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import RepeatedStratifiedKFold

    from curator.metrics import roc_auc

    y = np.asarray(y).astype(int)
    if min(np.bincount(y, minlength=2)) < folds:
        return None
    aucs = []
    for train, test in RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=seed).split(X, y):
        mean, std = _moments(X[train])
        model = LogisticRegression(C=C, max_iter=1000).fit(_standardise(X[train], mean, std), y[train])
        auc = roc_auc(y[test], model.decision_function(_standardise(X[test], mean, std)))
        if auc is not None:
            aucs.append(auc)
    return float(np.mean(aucs)) if aucs else None
