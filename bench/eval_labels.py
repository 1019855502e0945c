"""The label assigner on real data: LLM labels vs gold, the distilled classifier vs gold on documents it never saw.

    python bench/eval_labels.py [--corpus 2000] [--sizes 100 300] [--zero-shot-size 100] [--weborganizer --web-sizes 100]

AG News test (the 4 gold labels, with short descriptions, given as the taxonomy):
a corpus of ``--corpus`` documents; the embedded LLM labels a sample of N
(few-shot: 8 AG News documents outside the corpus, 2 per label; and zero-shot),
the embedding judge (MiniLM cosine to each label's description) is multiplied
in, and four students learn from the same sample: fastText and the embedding
student on the LLM's labels alone, the embedding student on the teacher's
(LLM x judge) labels, and that student distilled into fastText through 1,000
more corpus documents it labels (no gold label is used by any of them).
Reported: accuracy and macro-F1 against the gold labels of (a) the LLM alone,
the judge alone and the teacher on the LLM's sample, (b) each student on the
corpus documents the LLM never labelled; LLM seconds per document vs the
students' documents per second. Nothing was tuned on these labels: the judge's
scale is the model's training scale and C is picked by CV on the teacher's labels. The samples are nested (the 100 are the first 100 of the
300: ordered by a hash of id), so the answer cache makes the bigger run pay only
for the new documents. ``--weborganizer`` adds the same on the WebOrganizer
pages with their 24 topics (slow: 24 descriptions in every prompt).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RUNS, SHARED_DATA  # noqa: E402

from curator.config import Pipeline, PipelineOptions, StepSpec  # noqa: E402
from curator.plugins import get_registry  # noqa: E402
from curator.runner import run_pipeline  # noqa: E402
from curator_plugins.label_assigner import agreement  # noqa: E402

AG_NEWS = SHARED_DATA / "topics" / "ag_news_test.jsonl.gz"
WEB = SHARED_DATA / "web" / "weborganizer_examples.jsonl.gz"
WEB_TOPICS = SHARED_DATA / "web" / "weborganizer_topics.yaml"
AG_TAXONOMY = [
    {"name": "World", "description": "world news, politics, conflicts and diplomacy"},
    {"name": "Sports", "description": "sports news, games, teams and athletes"},
    {"name": "Business", "description": "business, companies, markets and the economy"},
    {"name": "Sci/Tech", "description": "science and technology, computers, internet and space"},
]


def read_jsonl(path: Path) -> list[dict]:
    import gzip

    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def order(rows: list[dict], salt: str) -> list[dict]:
    return sorted(rows, key=lambda r: hashlib.sha256(f"{r['id']}:{salt}".encode()).hexdigest())


#: the students compared on the same LLM labels: (step name, label_train parameters)
STUDENTS: dict[str, dict[str, Any]] = {
    "fasttext_on_llm": {"student": "fasttext", "sql": "SELECT text, llm_label AS label FROM llm_labels WHERE llm_label IS NOT NULL"},
    "embedding_on_llm": {"student": "embedding", "sql": "SELECT text, llm_label AS label FROM llm_labels WHERE llm_label IS NOT NULL"},
    "embedding": {"student": "embedding", "taxonomy": "${taxonomy.taxonomy_path}"},
    "distilled": {"student": "embedding", "taxonomy": "${taxonomy.taxonomy_path}", "distill_sample": 1000},
}


def run_case(folder: Path, corpus: Path, taxonomy: Path, n: int, shots: Path | None, kind: str, max_chars: int) -> dict:
    llm: dict[str, Any] = {"taxonomy": "${taxonomy.taxonomy_path}", "sample_size": n, "kind": kind, "label_column": "gold", "max_doc_chars": max_chars}
    if shots is not None:
        llm.update(few_shot_file=str(shots), few_shot=8)
    steps = [StepSpec("label_taxonomy", "taxonomy", {"path": str(taxonomy)}, 1), StepSpec("label_llm", "llm", llm, 2)]
    for i, (name, params) in enumerate(STUDENTS.items()):
        steps.append(StepSpec("label_train", f"train_{name}", params, 3 + 2 * i))
        steps.append(StepSpec("label_assign", f"labels_{name}", {"model": f"${{train_{name}.model_path}}"}, 4 + 2 * i))
    out = folder / f"{'fewshot' if shots else 'zeroshot'}-{n}"
    started = time.perf_counter()
    summary = run_pipeline(Pipeline(PipelineOptions(name="eval_labels"), steps, "bench"), out, registry=get_registry(), inputs=[str(corpus)], progress=False, overwrite=True)
    wall = time.perf_counter() - started
    funnel = {f["step"]: f for f in summary["funnel"]}
    llm_result = funnel["llm"]["result"]
    db = duckdb.connect(str(out / "curator.duckdb"), read_only=True)
    sample = db.execute("SELECT gold, label, llm_label, judge_label FROM llm_labels").fetchall()
    result = {
        "case": f"{'few-shot (8)' if shots else 'zero-shot'}, {n} LLM labels",
        "llm_labelled": llm_result["labelled"],
        "llm_parsed": llm_result["parsed"],
        # (a) the teacher on its own sample; failed LLM answers count as wrong in *_all
        "llm_accuracy_all": round(sum(g == p for g, _, p, _ in sample) / len(sample), 4),
        "llm_alone": agreement([r[0] for r in sample], [r[2] for r in sample]),
        "judge_alone": agreement([r[0] for r in sample], [r[3] for r in sample]),
        "teacher": agreement([r[0] for r in sample], [r[1] for r in sample]),
        "llm_calls": llm_result["llm_calls"],
        "llm_seconds_per_doc": llm_result["seconds_per_llm_call"],
        "wall_seconds": round(wall, 1),
        "students": {},
    }
    for name in STUDENTS:
        # (b) each student on the corpus documents the LLM never labelled
        unseen = db.execute(f"SELECT gold, labels_{name}__label FROM kept WHERE id NOT IN (SELECT id FROM llm_labels)").fetchall()
        clf = agreement([g for g, _ in unseen], [p for _, p in unseen])
        train, assign = funnel[f"train_{name}"]["result"], funnel[f"labels_{name}"]
        result["students"][name] = {
            "n": clf["n"],
            "accuracy": clf["accuracy"],
            "macro_f1": clf["macro_f1"],
            "heldout_agreement_with_teacher": train["accuracy"],
            "fasttext_agreement_with_embedding_student": train.get("fasttext_accuracy"),
            "assign_docs_per_s": round(assign["input"] / assign["seconds"]) if assign["seconds"] else None,
            "train_seconds": funnel[f"train_{name}"]["seconds"],
            "warnings": train["warnings"],
        }
    return result


def corpus_files(folder: Path, rows: list[dict], size: int, gold: str, shot_count: int, labels: list[str]) -> tuple[Path, Path]:
    rows = order(rows, "bench")
    shots, used = [], set()
    for label in labels:  # few-shot examples: outside the corpus, same number per label
        picks = [r for r in rows if r[gold] == label and 80 < len(r["text"]) < 1500][: shot_count // len(labels) or 1]
        shots += picks
        used |= {r["id"] for r in picks}
    corpus = [r for r in rows if r["id"] not in used][:size]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps({"id": r["id"], "text": r["text"], "gold": r[gold]}) + "\n" for r in corpus))
    (folder / "shots.jsonl").write_text("".join(json.dumps({"text": r["text"], "label": r[gold]}) + "\n" for r in order(shots, "shots")))
    return folder / "corpus.jsonl", folder / "shots.jsonl"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", type=int, default=2000)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 300])
    ap.add_argument("--zero-shot-size", type=int, default=100)
    ap.add_argument("--weborganizer", action="store_true")
    ap.add_argument("--web-sizes", type=int, nargs="+", default=[100])
    ap.add_argument("--out", type=Path, default=RUNS / "eval_labels")
    args = ap.parse_args()
    import yaml

    results = []
    folder = args.out / "ag_news"
    corpus, shots = corpus_files(folder, read_jsonl(AG_NEWS), args.corpus, "label", 8, [t["name"] for t in AG_TAXONOMY])
    (folder / "taxonomy.yaml").write_text(yaml.safe_dump({"labels": AG_TAXONOMY}, sort_keys=False))
    for n in args.sizes:
        results.append({"data": "ag_news", **run_case(folder, corpus, folder / "taxonomy.yaml", n, shots, "news article", 600)})
        print(json.dumps(results[-1]), flush=True)
    if args.zero_shot_size:
        results.append({"data": "ag_news", **run_case(folder, corpus, folder / "taxonomy.yaml", args.zero_shot_size, None, "news article", 600)})
        print(json.dumps(results[-1]), flush=True)
    if args.weborganizer:
        from curator_plugins.label_prompts import load_taxonomy

        names = [t["name"] for t in load_taxonomy(WEB_TOPICS)]
        folder = args.out / "weborganizer"
        corpus, shots = corpus_files(folder, [r for r in read_jsonl(WEB) if r.get("topic") in names], args.corpus, "topic", 24, names)
        for n in args.web_sizes:
            results.append({"data": "weborganizer", **run_case(folder, corpus, WEB_TOPICS, n, shots, "web page", 500)})
            print(json.dumps(results[-1]), flush=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
