"""Perplexity stage vs the limit, and peak memory vs input size, in one run.

    python bench/bench_perplexity.py [--text-mb 200]

* limit: the same SentencePiece + KenLM scoring (CCNet per-line formula, same
  normalisation) over the same texts already in memory, batch by batch;
* curator: the ``perplexity`` stage, Parquet in -> Parquet out, 1 worker;
* memory: the stage alone in a fresh process over 1/4 and all of the input;
  peak RSS must not grow with the input.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RUNS, SHARED_DATA, machine, replicated_web_shards, timer  # noqa: E402

from curator.config import Pipeline, PipelineOptions, StepSpec  # noqa: E402
from curator.plugins import get_registry  # noqa: E402
from curator.runner import run_pipeline  # noqa: E402
from curator_plugins.perplexity import PerplexityModel  # noqa: E402


def pipeline(steps: list[StepSpec]) -> Pipeline:
    return Pipeline(options=PipelineOptions(name="bench-perplexity"), steps=steps, source="bench")


def train_models(folder: Path) -> dict:
    spec = StepSpec(type="kenlm_train", name="lm", params={"reference": [str(SHARED_DATA / "reference" / "gutenberg.jsonl.gz")], "order": 5, "vocab_size": 2000}, line=1)
    (folder / "x.jsonl").parent.mkdir(parents=True, exist_ok=True)
    (folder / "x.jsonl").write_text('{"id": "x", "text": "x"}\n')
    run_pipeline(pipeline([spec]), folder / "train", registry=get_registry(), inputs=[str(folder / "x.jsonl")], progress=False)
    return json.loads((folder / "train" / "artifacts" / "lm" / "result.json").read_text())["result"]


def score_stage(models: dict, shards: list[str], out: Path) -> dict:
    spec = StepSpec(type="perplexity", name="perplexity", params={"lm": models["lm_path"], "sp": models["sp_path"]}, line=1)
    return run_pipeline(pipeline([spec]), out, registry=get_registry(), inputs=shards, progress=False)


def peak_rss_mb(models: dict, shards: list[Path], out: Path) -> float:
    """Run the stage alone in a fresh process and return its peak resident memory (MiB).

    Read from the child's own /proc/self/status VmHWM: wait4's ru_maxrss would
    include the pages the child shared with this (large) process before exec.
    """
    here = str(Path(__file__).resolve().parent)
    code = (
        f"import json, sys; sys.path.insert(0, {here!r}); from bench_perplexity import score_stage; "
        "score_stage(json.loads(sys.argv[1]), json.loads(sys.argv[2]), __import__('pathlib').Path(sys.argv[3])); "
        "print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])"
    )
    out_text = subprocess.run([sys.executable, "-c", code, json.dumps(models), json.dumps([str(s) for s in shards]), str(out)], check=True, capture_output=True, text=True).stdout
    return int(out_text.strip().splitlines()[-1]) / 1024  # KiB -> MiB


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--text-mb", type=int, default=200)
    args = parser.parse_args()
    shards, docs, text_bytes = replicated_web_shards(args.text_mb)
    print(f"input: {len(shards)} Parquet shards, {docs:,} documents, {text_bytes / 1e6:.0f} MB of text; {machine()}")
    shutil.rmtree(RUNS, ignore_errors=True)
    models = train_models(RUNS / "models")
    model = PerplexityModel(models["lm_path"], models["sp_path"])
    texts = [pq.read_table(s, columns=["text"]).column("text").to_pylist() for s in shards]
    with timer() as t:
        for shard_texts in texts:
            for start in range(0, len(shard_texts), 2000):
                model.score_documents(shard_texts[start : start + 2000], 100_000)
    limit = t.seconds
    del texts
    with timer() as t:
        summary = score_stage(models, [str(s) for s in shards], RUNS / "stage")
    ours = t.seconds
    assert summary["balanced"] and summary["input"] == docs
    print(f"limit: scoring texts in memory        {limit:7.2f}s  {docs / limit:8,.0f} docs/s")
    print(f"curator perplexity stage (Parquet)    {ours:7.2f}s  {docs / ours:8,.0f} docs/s")
    print(f"  curator = {limit / ours:.2f}x of the limit (goal >= 0.8x)")
    quarter = shards[: len(shards) // 4]
    small = peak_rss_mb(models, quarter, RUNS / "mem-quarter")
    large = peak_rss_mb(models, shards, RUNS / "mem-all")
    print(f"peak RSS, {len(quarter)} shards ({docs // 4:,} docs): {small:6.0f} MB")
    print(f"peak RSS, {len(shards)} shards ({docs:,} docs): {large:6.0f} MB  ({large / small:.2f}x for 4x the input)")
    shutil.rmtree(RUNS, ignore_errors=True)


if __name__ == "__main__":
    main()
