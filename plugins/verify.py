"""Does the filter help? A cheap Ultra-FineWeb-style check, without training an LLM.

Ultra-FineWeb verifies a filter by training a small LLM on what it kept and
on the unfiltered data and comparing them on benchmarks. ``verify`` (fit)
does the CPU-sized version of the same idea:

1. take the documents the pipeline kept and a random sample of *all* input
   documents of the same size (DuckDB, deterministic by id hash);
2. train a small KenLM n-gram model (order 3, the run's SentencePiece model)
   on each;
3. measure both models' perplexity on clean reference text the run never
   trained on (e.g. Python documentation).

One number per run: ``gain`` = random-sample perplexity / kept perplexity − 1.
Above 0, the kept data models clean text better than unfiltered data of the
same size did. When the corpus carries human labels (``label_column``), the
share of good documents among the kept ones is reported beside the share
among all, so a filter's precision against people shows up in `curator stats`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from curator import FitContext, FitStep, Params, hookimpl
from curator.errors import ConfigError
from curator.metrics import binary_labels
from curator.shards import iter_texts
from curator_plugins.perplexity import REQUIRES, _run, find_tool, normalized_lines


class Verify(FitStep):
    """Kept vs a random sample of the input: which trains the n-gram model that predicts clean text better."""

    name = "verify"
    description = "fit: KenLM on kept vs on a random input sample of the same size, perplexity on clean reference text (gain > 0: the filter helps)"
    requires = REQUIRES

    class Params(Params):
        reference: list[str] = Field(description="globs of clean held-out text (JSONL/Parquet), not used to train anything in the run", json_schema_extra={"path": True})
        sp: str = Field(description="SentencePiece model, e.g. ${lm.sp_path}", json_schema_extra={"path": True})
        sample_docs: int = Field(2000, ge=10, description="documents per side (fewer when fewer were kept)")
        order: int = Field(3, ge=2, le=6, description="n-gram order of the two small models")
        max_reference_lines: int = Field(20_000, gt=0, description="reference lines the two models are measured on")
        label_column: str | None = Field(None, description="corpus column with human labels (0/1): report their share among kept vs all")
        kenlm_bin: str | None = None
        seed: int = 0

    def fit(self, ctx: FitContext) -> dict[str, Any]:
        import sentencepiece

        p = self.params
        if not Path(p.sp).is_file():
            raise ConfigError(f"step {self.name!r}: SentencePiece model {p.sp!r} does not exist")
        order = f"hash(id || ':{int(p.seed)}')"
        kept = [r[0] for r in ctx.execute(f"SELECT text FROM corpus WHERE text IS NOT NULL ORDER BY {order} LIMIT {int(p.sample_docs)}").fetchall()]
        if len(kept) < 10:
            raise ConfigError(f"step {self.name!r}: only {len(kept)} documents were kept: too few to verify")
        everything = [r[0] for r in ctx.execute(f"SELECT text FROM documents WHERE text IS NOT NULL ORDER BY {order} LIMIT {len(kept)}").fetchall()]
        sp = sentencepiece.SentencePieceProcessor(model_file=p.sp)
        reference = self._reference_lines()
        with tempfile.TemporaryDirectory(prefix="curator-verify-") as tmp:
            ppl_kept = self._train_and_measure(kept, sp, reference, Path(tmp) / "kept")
            ppl_random = self._train_and_measure(everything, sp, reference, Path(tmp) / "random")
        gain = ppl_random / ppl_kept - 1
        result: dict[str, Any] = {
            "gain": round(gain, 4),
            "reference_ppl_kept": round(ppl_kept, 2),
            "reference_ppl_random": round(ppl_random, 2),
            "docs_per_side": len(kept),
            "reference_lines": len(reference),
            "warnings": [],
        }
        if gain <= 0:
            result["warnings"].append(
                f"step {self.name!r}: an n-gram model of the kept documents predicts the reference text no better than one of a random sample "
                f"(perplexity {ppl_kept:.1f} vs {ppl_random:.1f}): the filter may not be helping"
            )
        if p.label_column:
            result.update(self._human_share(ctx))
        return result

    def _reference_lines(self) -> list[str]:
        p = self.params
        lines: list[str] = []
        for text in iter_texts(p.reference):
            lines += normalized_lines(text)
            if len(lines) >= p.max_reference_lines:
                return lines[: p.max_reference_lines]
        if not lines:
            raise ConfigError(f"step {self.name!r}: no reference text in {p.reference}")
        return lines

    def _train_and_measure(self, texts: list[str], sp: Any, reference: list[str], stem: Path) -> float:
        import kenlm

        p = self.params
        lines = [line for t in texts for line in normalized_lines(t)]
        tokens = stem.with_suffix(".tokens")
        with open(tokens, "w", encoding="utf-8") as fh:
            for pieces in sp.encode(lines, out_type=str):
                fh.write(" ".join(pieces) + "\n")
        arpa, binary = stem.with_suffix(".arpa"), stem.with_suffix(".bin")
        cmd = [find_tool("lmplz", p.kenlm_bin), "-o", str(p.order), "-S", "10%", "--discount_fallback", "-T", str(stem.parent)]
        with open(tokens, "rb") as stdin, open(arpa, "wb") as stdout:
            _run(cmd, stdin=stdin, stdout=stdout)
        _run([find_tool("build_binary", p.kenlm_bin), str(arpa), str(binary)])
        model = kenlm.Model(str(binary))
        log10 = n = 0.0
        for pieces in sp.encode(reference, out_type=str):
            log10 += model.score(" ".join(pieces))
            n += len(pieces) + 1
        return float(10 ** (-log10 / n))

    def _human_share(self, ctx: FitContext) -> dict[str, Any]:
        columns = {r[0] for r in ctx.execute("DESCRIBE SELECT * FROM documents").fetchall()}
        if self.params.label_column not in columns:
            return {"human_labels": f"no column {self.params.label_column!r} in this run: nothing to compare with"}
        column = '"' + str(self.params.label_column).replace('"', '""') + '"'
        try:
            kept = [r[0] for r in ctx.execute(f"SELECT {column} FROM corpus WHERE {column} IS NOT NULL").fetchall()]
            every = [r[0] for r in ctx.execute(f"SELECT {column} FROM documents WHERE {column} IS NOT NULL").fetchall()]
        except Exception as exc:
            raise ConfigError(f"step {self.name!r}: label_column: {exc}") from None
        share = lambda values: float(np.mean(binary_labels(values))) if values else None  # noqa: E731
        return {"human_good_share_kept": share(kept), "human_good_share_all": share(every), "human_labelled_kept": len(kept), "human_labelled_all": len(every)}


@hookimpl
def register_steps(register):
    register(Verify)
