"""fastText scoring stage vs the raw model call vs datatrove, on the same input, in one run.

    python bench/bench_fasttext.py [--text-mb 200]

* limit: the same model's ``predict(texts, k=-1)`` over the same (normalised)
  texts already in memory, as Python strings (what a per-text or batched
  Python caller gets);
* limit, bytes: the binding under ``predict`` on the same lines as UTF-8
  bytes (what the stage calls: no str decode/encode, no wrapper);
* curator: the ``fasttext_quality`` stage, Parquet in -> Parquet out, 1 worker;
* datatrove: ``FastTextClassifierFilter`` with the same model, Parquet in ->
  Parquet out (its LocalPipelineExecutor, 1 task), annotate-only.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DOLMA, SHARED_DATA, machine, replicated_web_shards, timer  # noqa: E402
from common import RUNS as ALL_RUNS  # noqa: E402

from curator.config import Pipeline, PipelineOptions, StepSpec  # noqa: E402
from curator.plugins import get_registry  # noqa: E402
from curator.runner import run_pipeline  # noqa: E402
from curator_plugins.fasttext_quality import normalise_one, prepare_bytes, prepare_lines, train_supervised  # noqa: E402

RUNS = ALL_RUNS / "fasttext"  # our own folder: other benchmarks may be running in bench/_runs


DATATROVE_SCHEMA = pa.schema(
    [
        ("text", pa.string()),
        ("id", pa.string()),
        ("metadata", pa.struct([("url", pa.string()), ("file_path", pa.string()), ("__label__pos", pa.float64()), ("__label__neg", pa.float64())])),
    ]
)


def train_model(folder: Path) -> Path:
    """A DCLM-style model: Python docs (positive) vs the web sample (negative), wordNgrams 2, dim 100."""
    import gzip
    import json

    lines = []
    for path, label in ((SHARED_DATA / "reference" / "python311_docs.jsonl.gz", "pos"), (DOLMA, "neg")):
        with gzip.open(path, "rt") as fh:
            lines += [f"__label__{label} {normalise_one(json.loads(line)['text'])}" for line in fh]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.txt").write_text("\n".join(lines) + "\n")
    model, _ = train_supervised(str(folder / "train.txt"), wordNgrams=2, dim=100, bucket=200_000, epoch=5, verbose=0, thread=1, seed=1)
    model.save_model(str(folder / "model.bin"))
    return folder / "model.bin"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--text-mb", type=int, default=200)
    args = parser.parse_args()
    import fasttext

    fasttext.FastText.eprint = lambda *a, **k: None
    shards, docs, text_bytes = replicated_web_shards(args.text_mb)
    print(f"input: {len(shards)} Parquet shards, {docs:,} documents, {text_bytes / 1e6:.0f} MB of text; {machine()}")
    shutil.rmtree(RUNS, ignore_errors=True)
    model_path = train_model(RUNS / "model")

    # limit: texts already in memory, normalised as the stage does
    model = fasttext.load_model(str(model_path))
    texts = [prepare_lines(pq.read_table(s, columns=["text"]).column("text"), 100_000)[0] for s in shards]
    with timer() as t:
        for chunk in texts:
            model.predict(chunk, k=-1)
    limit = t.seconds
    lines = [prepare_bytes(pq.read_table(s, columns=["text"]).column("text"), 100_000)[0] for s in shards]
    with timer() as t:
        for chunk in lines:
            model.f.multilinePredict(chunk, -1, 0.0, "strict")
    limit_bytes = t.seconds
    del texts, lines

    pipe = Pipeline(
        options=PipelineOptions(name="bench-fasttext"),
        steps=[StepSpec(type="fasttext_quality", name="quality", params={"model": str(model_path)}, line=1)],
        source="bench",
    )
    with timer() as t:
        summary = run_pipeline(pipe, RUNS / "curator", registry=get_registry(), inputs=[str(s) for s in shards], progress=False)
    assert summary["kept"] == docs
    ours = t.seconds

    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.filters import FastTextClassifierFilter
    from datatrove.pipeline.readers import ParquetReader
    from datatrove.pipeline.writers import ParquetWriter

    first = shards[0].parent
    executor = LocalPipelineExecutor(
        pipeline=[
            ParquetReader(str(first), glob_pattern="*.parquet"),
            # remove_labels=[] is annotate-only (NOTES: None raises); newline_replacement=" " keeps words apart
            FastTextClassifierFilter(str(model_path), remove_labels=[], newline_replacement=" "),
            # an explicit schema: the filter stores label scores in per-document order (NOTES)
            ParquetWriter(str(RUNS / "datatrove-out"), compression="zstd", schema=DATATROVE_SCHEMA),
        ],
        tasks=1,
        workers=1,
        logging_dir=str(RUNS / "datatrove-logs"),
        skip_completed=False,
    )
    with timer() as t:
        executor.run()
    datatrove = t.seconds
    written = sum(pq.ParquetFile(p).metadata.num_rows for p in (RUNS / "datatrove-out").glob("*.parquet"))
    # datatrove drops documents whose text is empty or whitespace (its filter returns
    # `not not doc.text.strip()`), without a record; curator keeps them with a NULL score.
    dropped = docs - written

    print(f"limit: predict() on texts in memory   {limit:7.2f}s  {docs / limit:8,.0f} docs/s")
    print(f"limit, bytes: the binding on UTF-8    {limit_bytes:7.2f}s  {docs / limit_bytes:8,.0f} docs/s")
    print(f"curator fasttext_quality (Parquet)    {ours:7.2f}s  {docs / ours:8,.0f} docs/s")
    print(f"datatrove FastTextClassifierFilter    {datatrove:7.2f}s  {docs / datatrove:8,.0f} docs/s")
    print(f"  (datatrove wrote {written:,} rows: {dropped:,} empty documents dropped without a record)")
    print(f"  curator = {limit / ours:.2f}x of the limit (goal >= 0.85x)")
    print(f"  curator = {datatrove / ours:.2f}x datatrove's throughput (goal >= 1.5x)")
    shutil.rmtree(RUNS, ignore_errors=True)


if __name__ == "__main__":
    main()
