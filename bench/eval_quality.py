"""The shipped quality pipelines against people: ROC-AUC on human-labelled documents they were not tuned on.

    python bench/eval_quality.py [--labels FILE] [--pipelines fineweb_edu dclm_fasttext ccnet_perplexity] [--set STEP.PARAM=VALUE ...]

Each pipeline runs *as shipped* (its YAML unchanged) over its own input plus
the labelled documents (JSONL with id, text and a 0/1 label, default
shared/data/quality/dclm_human_dev.jsonl), so they are scored the way every
other document is. The human labels a pipeline used itself (the teacher's
``calibration`` table) are left out of its evaluation. A document a filter
removed before it was scored ranks below every scored one: that is the
pipeline's decision. ``--set`` evaluates a variant (as ``curator run --set``;
the variant is named in the output, never reported as the shipped pipeline).
Prints ROC-AUC with a 95 % bootstrap interval, the
number of documents, LLM calls and the run's seconds, beside document length.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import duckdb
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, RUNS, SHARED_DATA, machine  # noqa: E402

from curator.config import load_pipeline  # noqa: E402
from curator.metrics import binary_labels, bootstrap_auc  # noqa: E402
from curator.overrides import apply_overrides  # noqa: E402
from curator.plugins import get_registry  # noqa: E402
from curator.runner import run_pipeline  # noqa: E402

# pipeline -> (SQL expression of its final score over `documents`, what it is)
SCORES = {
    "fineweb_edu": ("edu__score", "LLM teacher (grade + cheap judges, 50 human labels) -> student"),
    "dclm_fasttext": ("quality__score", "fastText reference vs web, no LLM"),
    "ccnet_perplexity": ("-perplexity__ppl", "-perplexity, KenLM on Gutenberg"),
}


def evaluate(name: str, labels: Path, out: Path, overrides: list[str] | None = None) -> list[dict]:
    pipeline = load_pipeline(REPO / "pipelines" / f"{name}.yaml", get_registry())
    if overrides:
        apply_overrides(pipeline, overrides, get_registry())
    inputs = [str((REPO / p).resolve()) if not Path(p).is_absolute() else p for p in pipeline.options.input.paths] + [str(labels)]
    shutil.rmtree(out, ignore_errors=True)  # a fresh run: cached fit results would hide code changes
    started = time.perf_counter()
    summary = run_pipeline(pipeline, out, inputs=inputs, progress=False)
    seconds = time.perf_counter() - started
    con = duckdb.connect(str(out / "curator.duckdb"), read_only=True)
    tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    calibration = {r[0] for r in con.execute("SELECT id FROM calibration").fetchall()} if "calibration" in tables else set()
    wanted = {row["id"]: row["label"] for row in map(json.loads, labels.read_text().splitlines()) if row.get("label") is not None}
    expression, what = SCORES[name]
    rows = con.execute(f"SELECT id, {expression}, length(text) FROM documents").fetchall()
    rows = [r for r in rows if r[0] in wanted and r[0] not in calibration]
    y = binary_labels([wanted[r[0]] for r in rows])
    scored = [r[1] for r in rows if r[1] is not None]
    floor = (min(scored) - 1) if scored else 0.0
    score = np.array([floor if r[1] is None else r[1] for r in rows], dtype=float)
    # documents the LLM graded (answers may come from the cache; a cold run makes this many calls)
    llm_calls = sum((f.get("result") or {}).get("graded", 0) for f in summary["funnel"] if f["type"] == "llm_seed_selector")
    llm_calls += len(calibration)
    found = [
        {
            "method": f"{name}.yaml" + (f" --set {' '.join(overrides)}" if overrides else ""),
            "what": what,
            "auc": bootstrap_auc(y, score),
            "n": len(rows),
            "llm_calls": llm_calls,
            "seconds": seconds,
            "human_labels_used": len(calibration),
            "warnings": summary["warnings"],
        },
        {
            "method": "document length (same documents)",
            "what": "characters",
            "auc": bootstrap_auc(y, [r[2] for r in rows]),
            "n": len(rows),
            "llm_calls": 0,
            "seconds": 0.0,
            "human_labels_used": 0,
            "warnings": [],
        },
    ]
    if name == "fineweb_edu":
        # the pieces, on the same documents: what the student's parts and the LLM alone give
        parts = con.execute("SELECT id, edu__ngram FROM documents").fetchall()
        ngram = {r[0]: r[1] for r in parts}
        values = np.array([ngram.get(r[0]) if ngram.get(r[0]) is not None else -1 for r in rows], dtype=float)
        found.append(
            {
                "method": "  its fastText n-gram part alone",
                "what": "trained on the teacher's seeds",
                "auc": bootstrap_auc(y, values),
                "n": len(rows),
                "llm_calls": 0,
                "seconds": 0.0,
                "human_labels_used": 0,
                "warnings": [],
            }
        )
        graded = dict(con.execute("SELECT id, grade FROM grades").fetchall())
        both = [(wanted[i], g) for i, g in graded.items() if i in wanted and i not in calibration and g is not None]
        if len(both) >= 10:
            found.append(
                {
                    "method": "  the LLM grade alone (graded sample only)",
                    "what": "expected 0-5 grade",
                    "auc": bootstrap_auc(binary_labels([b[0] for b in both]), [b[1] for b in both]),
                    "n": len(both),
                    "llm_calls": 0,
                    "seconds": 0.0,
                    "human_labels_used": 0,
                    "warnings": [],
                }
            )
        report = json.loads((out / "artifacts" / "seeds" / "result.json").read_text())["result"].get("teacher", {}).get("report")
        if report:
            print(f"  teacher on its {report['n']} human labels (cross-validated): {report['combined_cv_auc']:.3f}; each signal alone / what it adds:")
            for signal, auc in report["alone"].items():
                print(f"    {signal:<16} alone {auc:.3f}  adds {report['adds'].get(signal, 0):+.3f}")
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--labels", type=Path, default=SHARED_DATA / "quality" / "dclm_human_dev.jsonl", help="JSONL with id, text, label (0/1)")
    parser.add_argument("--pipelines", nargs="+", default=list(SCORES), choices=list(SCORES))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="STEP.PARAM=VALUE", help="evaluate a variant (as curator run --set)")
    args = parser.parse_args()
    print(f"quality against people: {args.labels} ({machine()})")
    results = []
    for name in args.pipelines:
        print(f"running pipelines/{name}.yaml ...", flush=True)
        results += evaluate(name, args.labels.resolve(), RUNS / f"eval-{name}", args.overrides)
    print(f"\n{'method':<46} {'ROC-AUC':>8} {'95% CI':>15} {'docs':>5} {'labels used':>11} {'LLM calls':>9} {'seconds':>8}")
    for r in results:
        auc, low, high = r["auc"]
        print(f"{r['method']:<46} {auc:>8.3f} {f'[{low:.3f}, {high:.3f}]':>15} {r['n']:>5} {r['human_labels_used']:>11} {r['llm_calls']:>9} {r['seconds']:>8.0f}")
        for w in r["warnings"]:
            print(f"    warning: {w}")


if __name__ == "__main__":
    main()
