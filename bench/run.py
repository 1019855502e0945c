"""Run every benchmark in one go (make bench), or the ones named.

python bench/run.py [foundation] [fasttext] [fasttext-eval] [perplexity] [quality-eval] [heuristics] [dedup] [labels-eval] ...
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
SUITES = {
    "foundation": ["bench_foundation.py"],
    "fasttext": ["bench_fasttext.py"],
    "fasttext-eval": ["eval_fasttext_human.py"],
    "perplexity": ["bench_perplexity.py"],
    "perplexity-eval": ["eval_perplexity_human.py"],
    "llm": ["bench_llm.py"],
    "llm-eval": ["eval_seed_selector.py"],
    "quality-eval": ["eval_quality.py"],
    "heuristics": ["bench_heuristics.py"],
    "dedup": ["bench_dedup.py", "eval_dedup.py"],
    "labels-eval": ["eval_labels.py"],
}


def main(argv: list[str]) -> int:
    names = argv or list(SUITES)
    status = 0
    for name in names:
        for script in SUITES[name]:
            path = BENCH / script
            if not path.exists():
                continue
            print(f"\n=== {name}: python bench/{script}", flush=True)
            status |= subprocess.call([sys.executable, str(path)])
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
