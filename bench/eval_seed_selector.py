"""The LLM seed selector on real data: agreement with people, the loop's classifier, active vs random.

    python bench/eval_seed_selector.py [--pool 120]

A. The embedded LLM's grades vs the human labels of dclm_human_dev (250 docs,
   minus the few-shot examples), with the default few-shot examples and with
   3 examples taken from the human-labelled file (good -> 4, bad -> 0).
B. The loop of pipelines/fineweb_edu.yaml: grade a sample of the WebOrganizer
   web pool, select seeds (top/bottom 30 %), train fastText on them, and score
   the 250 human-judged documents: ROC-AUC against people. Cost: LLM calls,
   seconds, classifier docs/s.
C. Active vs random selection: classifier ROC-AUC as a function of LLM calls.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED_DATA  # noqa: E402

from curator.config import Pipeline, PipelineOptions, StepSpec  # noqa: E402
from curator.metrics import roc_auc  # noqa: E402
from curator.plugins import get_registry  # noqa: E402
from curator.runner import run_pipeline  # noqa: E402

HUMAN = SHARED_DATA / "quality" / "dclm_human_dev.jsonl"
WEB = SHARED_DATA / "web" / "weborganizer_examples.jsonl.gz"


def run(steps: list[StepSpec], inputs: list[str], out: Path) -> dict:
    pipe = Pipeline(options=PipelineOptions(name="eval"), steps=steps, source="bench")
    return run_pipeline(pipe, out, registry=get_registry(), inputs=inputs, progress=False)


def selector(name: str = "seeds", **params) -> StepSpec:
    base = {"max_doc_chars": 600, "pos_top_percent": 30, "neg_bottom_percent": 30}
    base.update(params)
    return StepSpec(type="llm_seed_selector", name=name, params=base, line=1)


def human_few_shot(folder: Path) -> tuple[Path, set[str]]:
    rows = [json.loads(line) for line in HUMAN.open()]
    good = [r for r in rows if r["label"] == 1 and 400 < len(r["text"]) < 3000][:2]
    bad = [r for r in rows if r["label"] == 0 and 200 < len(r["text"]) < 3000][:1]
    path = folder / "few_shot.jsonl"
    path.write_text("".join(json.dumps({"text": r["text"], "score": 4 if r["label"] else 0}) + "\n" for r in good + bad))
    return path, {r["id"] for r in good + bad}


def classifier_auc(seeds_run: Path, folder: Path) -> tuple[float | None, float]:
    """Train fastText on a run's seeds and score the human-judged documents."""
    seeds_table = seeds_run / "artifacts" / "seeds" / "seeds.parquet"
    rows = duckdb.execute(f"SELECT text, label FROM read_parquet('{seeds_table}')").fetchall()
    if len({label for _, label in rows}) < 2:
        return None, 0.0
    # the SQL sandbox reads only the run's own files: hand the seeds over as files
    folder.mkdir(parents=True, exist_ok=True)
    for name, wanted in (("pos", 1), ("neg", 0)):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t, label in rows if label == wanted))
    train = StepSpec(type="fasttext_train", name="train", params={"positive_files": [str(folder / "pos.jsonl")], "negative_files": [str(folder / "neg.jsonl")], "holdout_fraction": 0}, line=1)
    score = StepSpec(type="fasttext_quality", name="q", params={"model": "${train.model_path}"}, line=2)
    started = time.perf_counter()
    run([train, score], [str(HUMAN)], folder / "clf")
    seconds = time.perf_counter() - started
    got = duckdb.connect(str(folder / "clf" / "curator.duckdb"), read_only=True).execute("SELECT label, coalesce(q__score, 0) FROM documents").fetchall()
    return roc_auc(np.array([g[0] == 1 for g in got]), np.array([g[1] for g in got])), 250 / seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pool", type=int, default=120)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        few_shot, few_ids = human_few_shot(tmp)
        exclude = ", ".join(f"'{i}'" for i in few_ids)

        print("A. LLM grades vs human labels (dclm_human_dev, embedded Gemma 3 270M, 600 chars per document)")
        for label, extra in (("default few-shot", {}), ("3 human few-shot examples", {"few_shot_file": str(few_shot)})):
            started = time.perf_counter()
            summary = run([selector(sample_size=250, label_column="label", where=f"id NOT IN ({exclude})", **extra)], [str(HUMAN)], tmp / f"A-{len(extra)}")
            result = next(f for f in summary["funnel"] if f["step"] == "seeds")["result"]
            cal = result["calibration"]
            print(
                f"  {label:<28} n={cal['n']}  ROC-AUC {cal['roc_auc']:.3f}  Spearman {cal['spearman']:.3f}  kappa {cal['cohen_kappa']:.3f}  "
                f"({result['llm_calls']} calls, {time.perf_counter() - started:.0f}s)"
            )

        print(f"B. The loop: grade {args.pool} WebOrganizer pages -> seeds -> fastText -> ROC-AUC on the 250 human-judged documents")
        for label, extra in (("default few-shot", {}), ("3 human few-shot examples", {"few_shot_file": str(few_shot)})):
            started = time.perf_counter()
            summary = run([selector(sample_size=args.pool, **extra)], [str(WEB)], tmp / f"B-{len(extra)}")
            grading = time.perf_counter() - started
            result = next(f for f in summary["funnel"] if f["step"] == "seeds")["result"]
            auc, docs_per_s = classifier_auc(tmp / f"B-{len(extra)}", tmp / f"B-{len(extra)}-clf")
            print(
                f"  {label:<28} seeds {result['positives']}+{result['negatives']}  classifier ROC-AUC {auc:.3f}  "
                f"LLM calls {result['llm_calls']} ({result['cached']} cached), grading {grading:.0f}s, classifier {docs_per_s:,.0f} docs/s end to end"
            )

        print("C. Active vs random selection (same pool, default few-shot): classifier ROC-AUC by LLM calls")
        for budget in (40, 80, args.pool):
            summary = run([selector(sample_size=budget)], [str(WEB)], tmp / f"C-random-{budget}")
            auc, _ = classifier_auc(tmp / f"C-random-{budget}", tmp / f"C-random-{budget}-clf")
            print(f"  random  {budget:>4} calls: ROC-AUC {auc if auc is None else round(auc, 3)}")
        for rounds in (1, 3, 5):
            summary = run([selector(sample_size=20, active_rounds=rounds, active_batch=20)], [str(WEB)], tmp / f"C-active-{rounds}")
            result = next(f for f in summary["funnel"] if f["step"] == "seeds")["result"]
            auc, _ = classifier_auc(tmp / f"C-active-{rounds}", tmp / f"C-active-{rounds}-clf")
            print(f"  active  {result['graded']:>4} calls ({rounds} rounds of 20 after 20 random): ROC-AUC {auc if auc is None else round(auc, 3)}")


if __name__ == "__main__":
    main()
