"""The student of the quality loop: learns the teacher's judgement from its graded sample, scores every document.

The teacher (``llm_seed_selector`` with ``signals:``) graded a few hundred
documents with the LLM and cheap signals and weighed them on a handful of
human labels. The student must judge millions of documents without the LLM:

* ``quality_student`` (fit) trains a fastText n-gram classifier on the
  teacher's top and bottom documents (its settings chosen for the seed count,
  checked after training), and a logistic combination of that classifier's
  score with the cheap signals (length, line statistics, reference-vs-web
  fastText, KenLM) fitted to the teacher's scores on *every* graded document.
  The n-gram score it is fitted on is out-of-fold (each document scored by a
  model that did not train on it), so the combination does not trust the
  n-gram model more than it deserves. It reports how well it agrees with the
  teacher on documents it did not train on, and warns when that is near chance.
* ``quality_score`` (map) applies it: ``<name>__score`` in (0, 1), plus the
  n-gram component as ``<name>__ngram``.

The student is one JSON file (signals, weights, the fastText model's path):
nothing is pickled, and the same file scores on any worker.
"""

from __future__ import annotations

import json
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from pydantic import Field

from curator import FitContext, FitStep, MapStep, Params, hookimpl
from curator.errors import ConfigError
from curator.metrics import roc_auc, spearman
from curator_plugins.fasttext_quality import (
    NEGATIVE,
    POSITIVE,
    _load_fasttext,
    _positive_probability,
    auto_settings,
    normalise_one,
    predict_scores,
    prepare_lines,
    score_spread,
    train_supervised,
)
from curator_plugins.teacher import Combiner, Signals, SignalScorer, as_matrix

REQUIRES = {"fasttext": "fasttext-numpy2-wheel", "sklearn": "scikit-learn"}


class QualityStudent(FitStep):
    """Distil the teacher's scores into fastText n-grams + cheap signals."""

    name = "quality_student"
    description = "fit: fastText on the teacher's seeds + a combination with cheap signals fitted to the teacher's scores"
    requires = REQUIRES

    class Params(Params):
        sql: str = Field("SELECT text, teacher_score FROM grades WHERE teacher_score IS NOT NULL", description="DuckDB query: the teacher's graded documents (text, teacher_score)")
        signals: Signals = Field(default_factory=Signals, description="cheap signals, usually ${<teacher>.student_signals}")
        ngram: bool = Field(True, description="include a fastText n-gram classifier trained on the teacher's seeds")
        seed_percent: float = Field(30, gt=0, lt=50, description="top / bottom share of the teacher's scores that are the n-gram model's seeds")
        folds: int = Field(5, ge=2, description="folds for the out-of-fold n-gram scores and the agreement check")
        C: float = Field(1.0, gt=0, description="inverse L2 strength of the combination")
        min_auc: float = Field(0.6, ge=0, le=1, description="warn (error with strict) when the student agrees with the teacher's seeds below this ROC-AUC out of fold")
        strict: bool = False
        seed: int = 42

    def fit(self, ctx: FitContext) -> dict[str, Any]:
        p = self.params
        table = ctx.table(p.sql, ["text", "teacher_score"], f"step {self.name!r}: sql")
        texts = [t or "" for t in table.column("text").to_pylist()]
        target = np.array([np.nan if v is None else v for v in table.column("teacher_score").to_pylist()], dtype=float)
        keep = np.isfinite(target)
        texts, target = [t for t, k in zip(texts, keep) if k], target[keep]
        if len(texts) < 4 * p.folds:
            raise ConfigError(f"step {self.name!r}: {len(texts)} graded documents are too few to learn from (need {4 * p.folds})")
        low, high = np.percentile(target, [p.seed_percent, 100 - p.seed_percent])
        seed_label = np.where(target >= high, 1, np.where(target <= low, 0, -1))

        scorer = SignalScorer(p.signals.cheap())
        names = scorer.names()
        X = as_matrix(scorer.score(texts), names) if names else np.zeros((len(texts), 0))
        result: dict[str, Any] = {"graded": len(texts), "seeds": int((seed_label >= 0).sum()), "warnings": []}
        model_path = None
        if p.ngram:
            oof = self._out_of_fold_ngram(texts, seed_label)
            X = np.column_stack([X, oof]) if X.size else oof[:, None]
            names = names + ["ngram"]
            model_path = ctx.artifact_dir / "ngram.bin"
            settings = self._train_ngram(texts, seed_label, model_path)
            result["ngram_settings"] = settings
        if not names:
            raise ConfigError(f"step {self.name!r}: no signals and ngram: false leaves nothing to learn from")

        # Every graded document teaches, weighted by how sure the teacher is: each appears
        # once as good (weight = teacher score) and once as bad (weight = 1 - score).
        combiner = self._fit_combiner(names, X, target)
        agreement = self._agreement(names, X, target, seed_label)
        result.update(agreement)
        if agreement["seed_auc"] is not None and agreement["seed_auc"] < p.min_auc:
            result["warnings"].append(f"step {self.name!r}: out of fold, the student separates the teacher's seeds at ROC-AUC {agreement['seed_auc']:.3f} (< min_auc {p.min_auc})")
        spread = score_spread(combiner.score(X))
        result["score_spread"] = spread
        if spread < 0.02:
            result["warnings"].append(f"step {self.name!r}: scores spread over only {spread:.2g} between the 10th and 90th percentile: the student does not separate documents")
        if result["warnings"] and p.strict:
            raise ConfigError("; ".join(result["warnings"]) + " (strict: true)")
        student = {"signals": p.signals.cheap().model_dump(mode="json"), "combiner": combiner.to_dict(), "ngram_model": str(model_path) if model_path else None}
        path = ctx.artifact_dir / "student.json"
        path.write_text(json.dumps(student, indent=1))
        result["model_path"] = str(path)
        result["weights"] = dict(zip(names, [round(w, 4) for w in combiner.weights.tolist()]))
        return result

    def _fit_combiner(self, names: list[str], X: np.ndarray, target: np.ndarray) -> Combiner:
        X2 = np.vstack([X, X])
        y2 = np.concatenate([np.ones(len(X)), np.zeros(len(X))])
        w2 = np.concatenate([target, 1 - target])
        return Combiner.fit(names, X2, y2, C=self.params.C, sample_weight=w2)

    def _agreement(self, names: list[str], X: np.ndarray, target: np.ndarray, seed_label: np.ndarray) -> dict[str, Any]:
        """Out-of-fold: the student's combination fitted without the fold, compared with the teacher on it."""
        order = np.random.default_rng(self.params.seed).permutation(len(target))
        predicted = np.zeros(len(target))
        for fold in range(self.params.folds):
            test = order[fold :: self.params.folds]
            train = np.setdiff1d(order, test)
            predicted[test] = self._fit_combiner(names, X[train], target[train]).score(X[test])
        seeds = seed_label >= 0
        return {
            "teacher_spearman": spearman(predicted, target),
            "seed_auc": roc_auc(seed_label[seeds] == 1, predicted[seeds]) if seeds.any() else None,
        }

    def _ngram_lines(self, texts: list[str], labels: np.ndarray, idx: np.ndarray) -> list[str]:
        return [f"__label__{POSITIVE if labels[i] == 1 else NEGATIVE} {normalise_one(texts[i])}" for i in idx if labels[i] >= 0]

    def _train(self, lines: list[str], folder: Path, name: str) -> tuple[Any, dict[str, Any]]:
        random.Random(self.params.seed).shuffle(lines)
        path = folder / f"{name}.txt"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        settings = auto_settings(len(lines))
        model, _ = train_supervised(str(path), **settings, bucket=200_000, thread=1, seed=self.params.seed, verbose=0)
        path.unlink()
        return model, settings

    def _out_of_fold_ngram(self, texts: list[str], labels: np.ndarray) -> np.ndarray:
        order = np.random.default_rng(self.params.seed + 1).permutation(len(texts))
        scores = np.full(len(texts), 0.5)
        with tempfile.TemporaryDirectory(prefix="curator-student-") as tmp:
            for fold in range(self.params.folds):
                test = order[fold :: self.params.folds]
                lines = self._ngram_lines(texts, labels, np.setdiff1d(order, test))
                if sum(line.startswith(f"__label__{POSITIVE}") for line in lines) < 2 or sum(line.startswith(f"__label__{NEGATIVE}") for line in lines) < 2:
                    continue
                model, _ = self._train(lines, Path(tmp), f"fold{fold}")
                scores[test] = _positive_probability(model, [normalise_one(texts[i]) for i in test], f"__label__{POSITIVE}")
        return scores

    def _train_ngram(self, texts: list[str], labels: np.ndarray, model_path: Path) -> dict[str, Any]:
        lines = self._ngram_lines(texts, labels, np.arange(len(texts)))
        model, settings = self._train(lines, model_path.parent, "ngram-train")
        model.save_model(str(model_path))
        return settings


class QualityScore(MapStep):
    """Score every document with a student from ``quality_student``."""

    name = "quality_score"
    holds_model = True
    description = "adds <name>__score (the student's judgement, 0-1) and <name>__ngram"
    requires = REQUIRES

    class Params(Params):
        model: str = Field(description="student.json from quality_student (${student.model_path})", json_schema_extra={"path": True})
        max_chars: int = Field(100_000, gt=0, description="the n-gram model reads the first max_chars characters")

    def setup(self) -> None:
        path = Path(self.params.model)
        if not path.is_file():
            raise ConfigError(f"step {self.name!r}: student {path} does not exist")
        student = json.loads(path.read_text())
        self._combiner = Combiner.from_dict(student["combiner"])
        self._scorer = SignalScorer(Signals(**student["signals"]))
        self._ngram = _load_fasttext().load_model(student["ngram_model"]) if student.get("ngram_model") else None

    def process(self, batch: pa.Table) -> dict[str, Any]:
        if not hasattr(self, "_combiner"):
            self.setup()
        text = batch.column("text")
        values = self._scorer.score(text.to_pylist())
        columns: dict[str, Any] = {}
        if self._ngram is not None:
            lines, empty = prepare_lines(text, self.params.max_chars)
            # training text was whitespace-collapsed; fastText splits on any whitespace, so this matches
            values["ngram"] = predict_scores(self._ngram, lines, f"__label__{POSITIVE}")[0]
            columns["ngram"] = pa.array(values["ngram"], mask=empty)
        score = self._combiner.score(as_matrix(values, self._combiner.names))
        columns["score"] = pa.array(score, pa.float64())
        return columns


@hookimpl
def register_steps(register):
    register(QualityStudent)
    register(QualityScore)
