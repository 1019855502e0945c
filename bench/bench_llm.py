"""Embedded grading throughput: prefix reuse vs one full prompt per document, same documents, one run.

    python bench/bench_llm.py [--docs 40]

Both use the seed selector's real prompt (rubric + 3 few-shot examples) and
read the grade from next-token probabilities with the default model (Gemma 3
270M Q4_K_M, llama.cpp on the CPU). The naive loop evaluates the whole prompt
for every document; curator evaluates the shared prefix once and only the
document's tokens after it. No answer cache in either.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import load_dolma, machine, timer  # noqa: E402

from curator.llm import BackendConfig  # noqa: E402
from curator.llm.embedded import EmbeddedBackend  # noqa: E402
from curator_plugins.seed_selector import CHOICES, SeedSelector  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=40)
    parser.add_argument("--max-doc-chars", type=int, default=1000)
    args = parser.parse_args()
    step = SeedSelector(max_doc_chars=args.max_doc_chars)
    prefix = step.prompt_prefix()
    docs = [r["text"] for r in load_dolma() if len(r["text"]) > 500][: args.docs]
    suffixes = [step.suffix(t) for t in docs]
    reuse = EmbeddedBackend(BackendConfig(), reuse_prefix=True)
    naive = EmbeddedBackend(BackendConfig(), reuse_prefix=False)
    n_prefix = len(reuse._tokens(prefix, bos=True))
    n_doc = np.mean([len(reuse._tokens(s, bos=False)) for s in suffixes])
    print(f"{len(docs)} dolma documents cut to {args.max_doc_chars} chars; prompt prefix {n_prefix} tokens, document part {n_doc:.0f} tokens on average; {machine()}")
    reuse.grade(prefix, suffixes[:1], CHOICES)  # warm up both (model pages, threads)
    naive.grade(prefix, suffixes[:1], CHOICES)
    with timer() as t:
        naive_answers = naive.grade(prefix, suffixes, CHOICES)
    naive_s = t.seconds
    with timer() as t:
        reuse_answers = reuse.grade(prefix, suffixes, CHOICES)
    reuse_s = t.seconds
    diff = max(abs(a.expected - b.expected) for a, b in zip(reuse_answers, naive_answers))
    print(f"naive: full prompt per document   {naive_s:7.2f}s  {len(docs) / naive_s:6.2f} docs/s")
    print(f"curator: prefix evaluated once    {reuse_s:7.2f}s  {len(docs) / reuse_s:6.2f} docs/s")
    print(f"  speed-up {naive_s / reuse_s:.2f}x (goal >= 2x); largest grade difference between the two: {diff:.4f}")


if __name__ == "__main__":
    sys.exit(main())
