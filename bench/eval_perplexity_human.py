"""ROC-AUC of -perplexity against human quality labels (dclm_human_dev, 250 docs).

    python bench/eval_perplexity_human.py [--orders 2 3 5]

Trains SentencePiece + KenLM with the kenlm_train step on the reference text
(Python docs + Gutenberg, or each alone) and scores the 250 documents with
the perplexity step: CCNet's per-line formula.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED_DATA  # noqa: E402

from curator.config import Pipeline, PipelineOptions, StepSpec  # noqa: E402
from curator.metrics import roc_auc  # noqa: E402
from curator.plugins import get_registry  # noqa: E402
from curator.runner import run_pipeline  # noqa: E402
from curator_plugins.perplexity import PerplexityModel  # noqa: E402

HUMAN = SHARED_DATA / "quality" / "dclm_human_dev.jsonl"
REFERENCES = {
    "python docs + gutenberg": ["reference/python311_docs.jsonl.gz", "reference/gutenberg.jsonl.gz"],
    "gutenberg": ["reference/gutenberg.jsonl.gz"],
    "python docs": ["reference/python311_docs.jsonl.gz"],
}


def train(reference: list[str], order: int, vocab: int, folder: Path) -> dict:
    spec = StepSpec(type="kenlm_train", name="lm", params={"reference": [str(SHARED_DATA / r) for r in reference], "order": order, "vocab_size": vocab}, line=1)
    pipe = Pipeline(options=PipelineOptions(name="eval"), steps=[spec], source="bench")
    (folder / "dummy.jsonl").write_text(json.dumps({"id": "x", "text": "x"}) + "\n")
    run_pipeline(pipe, folder / "run", registry=get_registry(), inputs=[str(folder / "dummy.jsonl")], progress=False)
    return json.loads((folder / "run" / "artifacts" / "lm" / "result.json").read_text())["result"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, nargs="+", default=[2, 5])
    parser.add_argument("--vocab", type=int, nargs="+", default=[2000, 8000])
    args = parser.parse_args()
    rows = [json.loads(line) for line in HUMAN.open()]
    labels = np.array([r["label"] == 1 for r in rows])
    texts = [r["text"] for r in rows]
    print(f"{HUMAN.name}: {len(rows)} documents; ROC-AUC of -perplexity against the human label")
    for name, reference in REFERENCES.items():
        for vocab in args.vocab:
            for order in args.orders:
                with tempfile.TemporaryDirectory() as tmp:
                    result = train(reference, order, vocab, Path(tmp))
                    ppl = PerplexityModel(result["lm_path"], result["sp_path"]).score_documents(texts, 100_000)
                ppl = np.where(np.isnan(ppl), np.nanmax(ppl), ppl)  # unscorable = worst
                print(f"  {name:<24} vocab {vocab:>5} order {order}: ROC-AUC {roc_auc(labels, -ppl):.3f}  ({result['tokens']:,} training tokens)", flush=True)


if __name__ == "__main__":
    main()
