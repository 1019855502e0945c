"""Perplexity filter: SentencePiece + KenLM trained on reference text, CCNet-style scores and buckets.

Steps:

* ``kenlm_train`` (fit): CCNet normalisation of reference text, a
  SentencePiece unigram model, then KenLM's ``lmplz`` (order 5 by default,
  pruning optional) and ``build_binary``. Both models are run artifacts,
  reused on rerun.
* ``perplexity`` (filter): adds ``<step>__ppl`` per document with CCNet's
  formula, 10^(-Σ log10 p / Σ (tokens + 1)) summed over the document's lines;
  rejects above ``max_ppl``, or buckets head / middle / tail by fixed cutoffs
  and keeps ``keep_buckets``. Works with any existing ``.arpa``/``.bin`` +
  ``.sp.model`` pair (the CCNet Wikipedia models).
* ``perplexity_cutoffs`` (fit): the head/middle cutoffs as percentiles of this
  corpus (CCNet: 30th and 60th) with one DuckDB query.
* ``perplexity_buckets`` (filter): buckets an existing perplexity column by
  cutoffs (``${cutoffs.head_max}``), so the corpus is scored once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import unicodedata
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, model_validator

from curator import FilterResult, FilterStep, FitContext, FitStep, Params, hookimpl
from curator.errors import ConfigError
from curator.shards import discover_inputs, iter_texts

REQUIRES = {"kenlm": "kenlm", "sentencepiece": "sentencepiece"}
BUCKETS = ("head", "middle", "tail")

# ----------------------------------------------------------------- CCNet normalisation

# Unicode punctuation -> ASCII, as CCNet's text normaliser does (punct=1).
_PUNCT = {
    "，": ",",
    "。": ".",
    "、": ",",
    "„": '"',
    "”": '"',
    "“": '"',
    "«": '"',
    "»": '"',
    "１": '"',
    "」": '"',
    "「": '"',
    "《": '"',
    "》": '"',
    "´": "'",
    "∶": ":",
    "：": ":",
    "？": "?",
    "！": "!",
    "（": "(",
    "）": ")",
    "；": ";",
    "–": "-",
    "—": " - ",
    "．": ". ",
    "～": "~",
    "’": "'",
    "…": "...",
    "━": "-",
    "〈": "<",
    "〉": ">",
    "【": "[",
    "】": "]",
    "％": "%",
    "►": "-",
}


def _translation_table() -> dict[int, str | None]:
    """One table for str.translate: digits -> 0, punctuation -> ASCII, drop non-printing and combining marks."""
    table: dict[int, str | None] = {}
    for code in range(sys.maxunicode + 1):
        ch = chr(code)
        category = unicodedata.category(ch)
        if category == "Nd":
            table[code] = "0"
        elif category == "Mn":  # combining marks left by NFD: accents
            table[code] = None
    for code in list(range(0, 32)) + list(range(127, 160)):
        table[code] = None
    for src, dst in _PUNCT.items():
        table[ord(src)] = dst
    return table


_TABLE: dict[int, str | None] | None = None


def normalized_lines(text: str) -> list[str]:
    """The non-empty CCNet-normalised lines of a document."""
    return [n for n in (normalize_line(line) for line in text.split("\n")) if n]


def normalize_line(line: str) -> str:
    """CCNet's normalize(accent=True, case=True, numbers=True, punct=1) for one line."""
    global _TABLE
    if _TABLE is None:
        _TABLE = _translation_table()
    line = line.strip().lower()
    if not line.isascii():  # NFD is a no-op on ASCII, and costs a third of the time
        line = unicodedata.normalize("NFD", line)
    return line.translate(_TABLE)


# ----------------------------------------------------------------- scoring


class PerplexityModel:
    """A SentencePiece + KenLM pair, scoring documents with CCNet's formula."""

    def __init__(self, lm_path: str, sp_path: str, normalize: bool = True) -> None:
        import kenlm
        import sentencepiece

        for path in (lm_path, sp_path):
            if not Path(path).is_file():
                raise ConfigError(f"model file {path!r} does not exist")
        self.lm = kenlm.Model(lm_path)
        self.sp = sentencepiece.SentencePieceProcessor(model_file=sp_path)
        self.normalize = normalize

    def score_documents(self, texts: list[str | None], max_line_chars: int) -> np.ndarray:
        """Perplexity per document; NaN for documents with no scorable line (the caller masks them)."""
        lines: list[str] = []
        owner: list[int] = []
        for doc, text in enumerate(texts):
            if not text:
                continue
            for line in text.split("\n"):
                if len(line) > max_line_chars:
                    line = line[:max_line_chars]
                line = normalize_line(line) if self.normalize else line.strip()
                if line:
                    lines.append(line)
                    owner.append(doc)
        log10 = np.zeros(len(texts))
        length = np.zeros(len(texts))
        if lines:
            pieces = self.sp.encode(lines, out_type=str)
            score = self.lm.score
            for doc, tokens in zip(owner, pieces):
                log10[doc] += score(" ".join(tokens))
                length[doc] += len(tokens) + 1  # + </s>, as CCNet counts
        with np.errstate(divide="ignore", invalid="ignore"):
            ppl = np.power(10.0, -log10 / length)
        ppl[length == 0] = np.nan
        return ppl


def bucket_of(ppl: np.ndarray, head_max: float, middle_max: float) -> list[str | None]:
    out: list[str | None] = []
    for value in ppl:
        if np.isnan(value):
            out.append(None)
        elif value <= head_max:
            out.append("head")
        elif value <= middle_max:
            out.append("middle")
        else:
            out.append("tail")
    return out


class BucketParams(Params):
    head_max: float | None = Field(None, gt=0, description="perplexity <= head_max is 'head'")
    middle_max: float | None = Field(None, gt=0, description="perplexity <= middle_max is 'middle', above is 'tail'")
    keep_buckets: list[Literal["head", "middle", "tail"]] | None = Field(None, description="buckets to keep (default: all)")

    @model_validator(mode="after")
    def _cutoffs(self) -> BucketParams:
        if (self.head_max is None) != (self.middle_max is None):
            raise ValueError("set both head_max and middle_max, or neither")
        if self.head_max is not None and self.middle_max is not None and self.head_max > self.middle_max:
            raise ValueError("head_max must be <= middle_max")
        if self.keep_buckets is not None and self.head_max is None:
            raise ValueError("keep_buckets needs head_max and middle_max")
        return self


def _decide(ppl: np.ndarray, params: Any) -> tuple[np.ndarray, list[str], dict[str, Any]]:
    """Keep mask, reasons and bucket column for perplexities under bucket/max_ppl parameters."""
    empty = np.isnan(ppl)
    keep = ~empty
    reasons = ["no_scorable_text" if e else "perplexity_above_max" for e in empty]
    columns: dict[str, Any] = {}
    max_ppl = getattr(params, "max_ppl", None)
    if max_ppl is not None:
        keep &= ~(ppl > max_ppl)
    if params.head_max is not None:
        buckets = bucket_of(ppl, params.head_max, params.middle_max)
        columns["bucket"] = pa.array(buckets, pa.string())
        if params.keep_buckets is not None:
            allowed = set(params.keep_buckets)
            for i, b in enumerate(buckets):
                if b is not None and b not in allowed and keep[i]:
                    keep[i] = False
                    reasons[i] = f"perplexity_bucket_{b}"
    return keep, reasons, columns


class Perplexity(FilterStep):
    """Score documents with SentencePiece + KenLM (CCNet's formula); filter by max or buckets."""

    name = "perplexity"
    holds_model = True
    description = "adds <name>__ppl (CCNet per-line formula); max_ppl or head/middle/tail buckets"
    requires = REQUIRES

    class Params(BucketParams):
        lm: str = Field(description="KenLM model (.arpa or .bin), e.g. ${kenlm_train.lm_path}", json_schema_extra={"path": True})
        sp: str = Field(description="SentencePiece model, e.g. ${kenlm_train.sp_path}", json_schema_extra={"path": True})
        max_ppl: float | None = Field(None, gt=0, description="reject documents above this perplexity")
        normalize: bool = Field(True, description="CCNet normalisation before tokenising (as the model was trained)")
        max_line_chars: int = Field(100_000, gt=0, description="score only the first characters of very long lines")

    def setup(self) -> None:
        self._model = PerplexityModel(self.params.lm, self.params.sp, self.params.normalize)

    def filter(self, batch: pa.Table) -> FilterResult:
        if not hasattr(self, "_model"):
            self.setup()
        ppl = self._model.score_documents(batch.column("text").to_pylist(), self.params.max_line_chars)
        keep, reasons, columns = _decide(ppl, self.params)
        columns["ppl"] = pa.array(ppl, mask=np.isnan(ppl))
        return FilterResult(keep, reasons, columns)


class PerplexityBuckets(FilterStep):
    """Bucket an existing perplexity column by cutoffs (from perplexity_cutoffs) and keep some buckets."""

    name = "perplexity_buckets"
    description = "head/middle/tail of an existing perplexity column; keep_buckets"

    class Params(BucketParams):
        column: str = Field(description="perplexity column, e.g. perplexity__ppl")

        @model_validator(mode="after")
        def _needs_cutoffs(self) -> PerplexityBuckets.Params:
            if self.head_max is None:
                raise ValueError("perplexity_buckets needs head_max and middle_max")
            return self

    def filter(self, batch: pa.Table) -> FilterResult:
        values = pc.cast(batch.column(self.params.column), pa.float64()).to_numpy(zero_copy_only=False)
        keep, reasons, columns = _decide(values, self.params)
        return FilterResult(keep, reasons, columns)


class PerplexityCutoffs(FitStep):
    """Head/middle cutoffs as percentiles of this corpus (CCNet: 30th and 60th)."""

    name = "perplexity_cutoffs"
    description = "fit: head_max / middle_max = quantiles of a perplexity column (DuckDB)"

    class Params(Params):
        column: str = Field("perplexity__ppl", description="perplexity column")
        head_quantile: float = Field(0.3, gt=0, lt=1)
        middle_quantile: float = Field(0.6, gt=0, lt=1)

    def fit(self, ctx: FitContext) -> dict[str, Any]:
        column = self.params.column.replace('"', '""')
        head, middle, rows = ctx.execute(
            f'SELECT quantile_cont("{column}", ?), quantile_cont("{column}", ?), count("{column}") FROM corpus',
            [self.params.head_quantile, self.params.middle_quantile],
        ).fetchall()[0]
        if rows == 0:
            raise ConfigError(f"step {self.name!r}: column {self.params.column!r} has no values to take quantiles of")
        return {"head_max": head, "middle_max": middle, "rows": rows}


# ----------------------------------------------------------------- training


def find_tool(name: str, configured: str | None = None) -> str:
    """lmplz/build_binary: the configured folder, $CURATOR_KENLM_BIN, this Python's bin folder, then PATH."""
    for folder in (configured, os.environ.get("CURATOR_KENLM_BIN"), str(Path(sys.executable).parent)):
        if folder and (Path(folder) / name).is_file():
            return str(Path(folder) / name)
    found = shutil.which(name)
    if found:
        return found
    raise ConfigError(f"KenLM's {name} was not found: run scripts/build_kenlm.sh (make setup does) or set CURATOR_KENLM_BIN")


class KenlmTrain(FitStep):
    """Train SentencePiece + a KenLM n-gram model on reference text."""

    name = "kenlm_train"
    description = "fit: SentencePiece unigram + KenLM n-gram (lmplz) on reference text, CCNet normalisation"
    requires = REQUIRES

    class Params(Params):
        reference: list[str] = Field(description="globs of reference documents (JSONL/Parquet)", json_schema_extra={"path": True})
        text_column: str = Field("text", description="text column of the reference files")
        order: int = Field(5, ge=1, le=9, description="n-gram order")
        prune: list[int] | None = Field(None, description="lmplz --prune thresholds per order, e.g. [0, 0, 1]")
        vocab_size: int = Field(8000, ge=100, description="SentencePiece vocabulary")
        max_sentences: int = Field(1_000_000, gt=0, description="lines sampled to train SentencePiece")
        memory: str = Field("20%", description="lmplz -S (memory for sorting)")
        kenlm_bin: str | None = Field(None, description="folder with lmplz and build_binary")
        keep_arpa: bool = Field(False, description="keep the ARPA file beside the binary")

    def config_fingerprint(self) -> dict[str, Any]:
        fingerprint = super().config_fingerprint()
        fingerprint["files"] = [(f, os.path.getsize(f), os.path.getmtime(f)) for f in discover_inputs(self.params.reference)]
        return fingerprint

    def fit(self, ctx: FitContext) -> dict[str, Any]:
        import sentencepiece

        p = self.params
        lmplz, build_binary = find_tool("lmplz", p.kenlm_bin), find_tool("build_binary", p.kenlm_bin)
        out = ctx.artifact_dir
        text_file = out / "reference.normalized.txt"
        n_lines = 0
        with open(text_file, "w", encoding="utf-8") as fh:
            for text in iter_texts(p.reference, p.text_column):
                for line in normalized_lines(text):
                    fh.write(line + "\n")
                    n_lines += 1
        if n_lines == 0:
            raise ConfigError(f"step {self.name!r}: no reference text in {p.reference}")
        sp_prefix = out / "sp"
        sentencepiece.SentencePieceTrainer.train(
            input=str(text_file),
            model_prefix=str(sp_prefix),
            vocab_size=p.vocab_size,
            model_type="unigram",
            input_sentence_size=p.max_sentences,
            shuffle_input_sentence=True,
            character_coverage=0.9999,
            hard_vocab_limit=False,
            minloglevel=2,
            num_threads=max(1, ctx.workers),
        )
        sp = sentencepiece.SentencePieceProcessor(model_file=f"{sp_prefix}.model")
        tokens_file = out / "reference.tokens.txt"
        n_tokens = 0
        with open(text_file, encoding="utf-8") as src, open(tokens_file, "w", encoding="utf-8") as dst:
            while True:
                chunk = [line.rstrip("\n") for _, line in zip(range(50_000), src)]
                if not chunk:
                    break
                for pieces in sp.encode(chunk, out_type=str):
                    dst.write(" ".join(pieces) + "\n")
                    n_tokens += len(pieces)
        arpa = out / "lm.arpa"
        # --discount_fallback: small reference sets lack the count-of-counts KN needs
        cmd = [lmplz, "-o", str(p.order), "-S", p.memory, "--discount_fallback", "-T", tempfile.gettempdir()]
        if p.prune:
            cmd += ["--prune", *[str(x) for x in p.prune]]
        with open(tokens_file, "rb") as stdin, open(arpa, "wb") as stdout:
            _run(cmd, stdin=stdin, stdout=stdout)
        lm_bin = out / "lm.bin"
        _run([build_binary, str(arpa), str(lm_bin)])
        if not p.keep_arpa:
            arpa.unlink()
        text_file.unlink()
        tokens_file.unlink()
        return {
            "lm_path": str(lm_bin),
            "sp_path": f"{sp_prefix}.model",
            "order": p.order,
            "vocab_size": sp.get_piece_size(),
            "lines": n_lines,
            "tokens": n_tokens,
        }


def _run(cmd: list[str], **kwargs: Any) -> None:
    proc = subprocess.run(cmd, stderr=subprocess.PIPE, **kwargs)
    if proc.returncode != 0:
        raise RuntimeError(f"{Path(cmd[0]).name} failed ({proc.returncode}): {proc.stderr.decode(errors='replace')[-2000:]}")


@hookimpl
def register_steps(register):
    for cls in (KenlmTrain, Perplexity, PerplexityCutoffs, PerplexityBuckets):
        register(cls)
