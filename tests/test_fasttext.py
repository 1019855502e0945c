"""The fastText quality plugin with real models trained in the tests on real text."""

from __future__ import annotations

import json

import duckdb
import numpy as np
import pytest
from conftest import SHARED_DATA, curator_cli, pipeline_file, read_jsonl, write_jsonl

from curator.config import load_pipeline
from curator.errors import ConfigError
from curator.runner import run_pipeline
from curator_plugins.fasttext_quality import _pareto_draw, train_supervised

fasttext = pytest.importorskip("fasttext")

HUMAN = SHARED_DATA / "quality" / "dclm_human_dev.jsonl"

LABELLED = """
steps:
  - step: fasttext_train
    name: train
    seeds_sql: SELECT text, label FROM corpus
    holdout_fraction: 0.2
  - step: fasttext_quality
    name: quality
    model: ${train.model_path}
  - step: percentile_threshold
    name: top
    column: quality__score
    keep_top_percent: 10
  - step: range_filter
    name: keep_top
    column: quality__score
    min: ${top.threshold}
    reason: quality_below_threshold
"""


@pytest.fixture(scope="module")
def labelled_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ft")
    pipe = pipeline_file(tmp, LABELLED)
    out = curator_cli("run", str(pipe), "-i", str(HUMAN), "-o", str(tmp / "run"), "-q").stdout
    return tmp / "run", out


def test_probabilities_are_real(labelled_run):
    """fasttext-wheel gives every label the top-1 probability; ours must not."""
    run, _ = labelled_run
    model = fasttext.load_model(str(run / "artifacts" / "train" / "model.bin"))
    labels, probs = model.predict(["the function returns a list of values", "buy cheap pills casino bonus"], k=-1)
    for row in probs:
        assert abs(row.sum() - 1.0) < 1e-3
        assert row[0] > row[1]


def test_trained_on_labels_scores_filters_and_reports(labelled_run):
    run, stdout = labelled_run
    con = duckdb.connect(str(run / "curator.duckdb"), read_only=True)
    total, kept = con.execute("SELECT (SELECT count(*) FROM documents), (SELECT count(*) FROM kept)").fetchone()
    assert total == 250 and 24 <= kept <= 26
    # rejected rows keep their score and the reason; the threshold can be re-tuned in SQL
    rows = con.execute("SELECT reject_reason, quality__score FROM rejected").fetchall()
    assert {r[0] for r in rows} == {"quality_below_threshold"} and all(r[1] is not None for r in rows)
    threshold = json.loads((run / "artifacts" / "top" / "result.json").read_text())["result"]["threshold"]
    assert max(r[1] for r in rows) < threshold <= con.execute("SELECT min(quality__score) FROM kept").fetchone()[0]
    evaluation = json.loads((run / "artifacts" / "train" / "eval.json").read_text())
    assert set(evaluation) >= {"roc_auc", "f1", "precision", "recall", "confusion"}
    assert sum(evaluation["confusion"].values()) == evaluation["n"] == 49
    assert "roc_auc=" in stdout  # the funnel shows the evaluation
    stats = json.loads(curator_cli("stats", "--run", str(run), "--json").stdout)
    train = next(f for f in stats["funnel"] if f["step"] == "train")
    assert train["result"]["eval"]["roc_auc"] == evaluation["roc_auc"]


def test_scores_agree_with_the_model_called_directly(labelled_run):
    run, _ = labelled_run
    model = fasttext.load_model(str(run / "artifacts" / "train" / "model.bin"))
    con = duckdb.connect(str(run / "curator.duckdb"), read_only=True)
    rows = con.execute("SELECT text, quality__score, quality__label FROM documents ORDER BY id LIMIT 20").fetchall()
    for text, score, label in rows:
        labels, probs = model.predict(" ".join(text.lower().split()), k=-1)
        assert score == pytest.approx(float(probs[labels.index("__label__pos")]), abs=1e-6)
        assert label == labels[0]


def test_rerun_reuses_the_model(labelled_run, tmp_path):
    run, _ = labelled_run
    model = run / "artifacts" / "train" / "model.bin"
    before = model.stat().st_mtime_ns
    curator_cli("run", str(run / "pipeline.yaml"), "-i", str(HUMAN), "-o", str(run), "-q")
    assert model.stat().st_mtime_ns == before


def test_positive_and_negative_files_separate_reference_from_web(tmp_path, registry):
    text = f"""
steps:
  - step: fasttext_train
    name: train
    positive_files: ["{SHARED_DATA}/reference/python311_docs.jsonl.gz"]
    negative_files: ["{SHARED_DATA}/web/dolma_cc_sample.jsonl.gz"]
    holdout_fraction: 0.2
"""
    pipe = load_pipeline(pipeline_file(tmp_path, text), registry)
    write_jsonl(tmp_path / "empty.jsonl", [{"id": "x", "text": "unused corpus"}])
    run_pipeline(pipe, tmp_path / "run", inputs=[str(tmp_path / "empty.jsonl")], progress=False)
    result = json.loads((tmp_path / "run" / "artifacts" / "train" / "result.json").read_text())["result"]
    assert result["roc_auc"] > 0.95
    assert result["train_positive"] == result["train_negative"]  # balanced by downsampling


@pytest.fixture(scope="module")
def dclm_style_model(tmp_path_factory):
    """An existing model with DCLM's labels (__label__hq / __label__cc), trained outside curator."""
    tmp = tmp_path_factory.mktemp("dclm-model")
    rows = read_jsonl(HUMAN)
    lines = [f"__label__{'hq' if r['label'] == 1 else 'cc'} {' '.join(r['text'].lower().split())}" for r in rows]
    (tmp / "train.txt").write_text("\n".join(lines) + "\n")
    model, _ = train_supervised(str(tmp / "train.txt"), wordNgrams=2, bucket=200_000, dim=100, epoch=5, verbose=0, seed=1, thread=1)
    model.save_model(str(tmp / "dclm.bin"))
    return tmp / "dclm.bin"


def _score_pipeline(tmp_path, model, extra=""):
    return pipeline_file(tmp_path, f"steps:\n  - step: fasttext_quality\n    name: q\n    model: {model}\n    positive_label: hq\n{extra}")


def test_load_existing_model_and_threshold(tmp_path, registry, dclm_style_model):
    pipe = load_pipeline(_score_pipeline(tmp_path, dclm_style_model, "    threshold: 0.5\n"), registry)
    summary = run_pipeline(pipe, tmp_path / "run", inputs=[str(HUMAN)], progress=False)
    con = duckdb.connect(str(tmp_path / "run" / "curator.duckdb"), read_only=True)
    assert con.execute("SELECT min(q__score) >= 0.5 FROM kept").fetchone()[0]
    assert con.execute("SELECT max(q__score) < 0.5 FROM rejected").fetchone()[0]
    assert summary["balanced"] and 0 < summary["kept"] < 250


def test_unknown_label_names_the_models_labels(tmp_path, registry, dclm_style_model):
    text = f"steps:\n  - step: fasttext_quality\n    model: {dclm_style_model}\n    positive_label: good\n"
    pipe = load_pipeline(pipeline_file(tmp_path, text), registry)
    with pytest.raises(ConfigError, match="has no label '__label__good'.*__label__hq"):
        run_pipeline(pipe, tmp_path / "run", inputs=[str(HUMAN)], progress=False)


def test_pareto_sampling_is_reproducible_across_workers(tmp_path, registry, dclm_style_model, sharded_input):
    pipe = load_pipeline(_score_pipeline(tmp_path, dclm_style_model, "    pareto_alpha: 3\n"), registry)
    one = run_pipeline(pipe, tmp_path / "one", inputs=[str(sharded_input)], progress=False)
    run_pipeline(pipe, tmp_path / "two", inputs=[str(sharded_input)], progress=False, workers=2)
    q = "SELECT id, reject_reason FROM documents ORDER BY id"
    assert duckdb.connect(str(tmp_path / "one" / "curator.duckdb")).execute(q).fetchall() == duckdb.connect(str(tmp_path / "two" / "curator.duckdb")).execute(q).fetchall()
    assert 0 < one["kept"] < 697
    # every row follows NeMo's rule: keep when pareto(alpha) > 1 - score, the draw seeded by the id
    con = duckdb.connect(str(tmp_path / "one" / "curator.duckdb"), read_only=True)
    rows = con.execute("SELECT id, q__score, reject_step IS NULL FROM documents WHERE q__score IS NOT NULL").fetchall()
    draws = _pareto_draw([r[0] for r in rows], 3, 0)
    assert [bool(d > 1 - r[1]) for d, r in zip(draws, rows)] == [r[2] for r in rows]


def test_awkward_texts_are_scored_or_rejected_never_crash(tmp_path, registry, dclm_style_model):
    rows = [
        {"id": "empty", "text": ""},
        {"id": "spaces", "text": "   \t  "},
        {"id": "newlines", "text": "\n\n\n"},
        {"id": "long", "text": "word " * 400_000},
        {"id": "mixed", "text": "Ünïcödé текст 中文 🙂\nsecond line"},
        {"id": "normal", "text": "A normal paragraph about the history of the region."},
    ]
    write_jsonl(tmp_path / "odd.jsonl", rows)
    pipe = load_pipeline(_score_pipeline(tmp_path, dclm_style_model, "    threshold: 0.0\n"), registry)
    summary = run_pipeline(pipe, tmp_path / "run", inputs=[str(tmp_path / "odd.jsonl")], progress=False)
    con = duckdb.connect(str(tmp_path / "run" / "curator.duckdb"), read_only=True)
    rejected = dict(con.execute("SELECT id, reject_reason FROM rejected").fetchall())
    assert rejected == {"empty": "empty_text", "spaces": "empty_text", "newlines": "empty_text"}
    scores = dict(con.execute("SELECT id, q__score FROM kept").fetchall())
    assert set(scores) == {"long", "mixed", "normal"} and all(0 <= s <= 1 for s in scores.values())
    assert summary["balanced"]
    assert not np.isnan(list(scores.values())).any()


def _per_text_reference(model, text, max_chars, label):
    """The plain path the batch scoring must equal: one text at a time, through fastText's own predict()."""
    import pyarrow as pa
    import pyarrow.compute as pc

    line = pc.utf8_lower(pa.array([text]))[0].as_py()[:max_chars]  # the stage lowercases with Arrow
    if not line or line.isspace():
        return None, None
    labels, probs = model.predict(line.replace("\n", " "), k=-1)
    return float(probs[list(labels).index(label)]), labels[0]


@pytest.mark.parametrize("max_chars", [100_000, 700])
def test_batch_scores_equal_per_text_predict_on_real_web_text(tmp_path, registry, dclm_style_model, dolma_rows, max_chars):
    """The Arrow/bytes scoring path gives exactly the scores and labels of predict() called per document."""
    rows = dolma_rows + [
        {"id": "blank", "text": " \u00a0\u2028\t", "url": None},
        {"id": "dotted", "text": "\u0130stanbul \u00e9t\u00e9\r\nna\u00efve " * 100, "url": None},
    ]
    write_jsonl(tmp_path / "web.jsonl", rows)
    path = _score_pipeline(tmp_path, dclm_style_model, f"    max_chars: {max_chars}\n")
    path.write_text("batch_size: 128\n" + path.read_text())  # several batches, so Arrow slices reach the step
    pipe = load_pipeline(path, registry)
    run_pipeline(pipe, tmp_path / "run", inputs=[str(tmp_path / "web.jsonl")], progress=False)
    con = duckdb.connect(str(tmp_path / "run" / "curator.duckdb"), read_only=True)
    got = {i: (s, lab) for i, s, lab in con.execute("SELECT id, q__score, q__label FROM documents").fetchall()}
    model = fasttext.load_model(str(dclm_style_model))
    assert len(got) == len(rows)
    truncated = 0
    for row in rows:
        expected = _per_text_reference(model, row["text"], max_chars, "__label__hq")
        assert got[row["id"]] == expected, row["id"]
        truncated += len(row["text"]) > max_chars
    assert got["blank"] == (None, None) and got["dotted"][0] is not None
    assert truncated > 50 or max_chars > 1000  # the cut is exercised on real text


def test_prepared_lines_are_the_per_text_normalisation_on_sliced_chunked_arrays(dolma_rows):
    """prepare_lines / prepare_bytes on Arrow slices and chunks equal the Python loop they replaced."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from curator_plugins.fasttext_quality import prepare_bytes, prepare_lines

    texts = [r["text"] for r in dolma_rows] + ["", "\n\n", "\u3000", "a\nb", None]
    array = pa.chunked_array([pa.array(texts[:300]), pa.array(texts[300:])]).slice(5, len(texts) - 5)
    for lowercase in (True, False):
        plain = (pc.utf8_lower(array) if lowercase else array).to_pylist()
        expected = [("" if t is None else t)[:500].replace("\n", " ") for t in plain]
        lines, empty = prepare_lines(array, 500, lowercase)
        raw, empty_too = prepare_bytes(array, 500, lowercase)
        assert lines == expected
        assert raw == [e.encode() + b"\n" for e in expected]
        assert empty.tolist() == empty_too.tolist() == [not e or e.isspace() for e in expected]
    # "", "\n\n", "\u3000" and the NULL (scored as empty, not a crash); "a\nb" is text
    assert empty[-5:].tolist() == [True, True, True, False, True]


def test_arrow_whitespace_is_pythons_whitespace():
    """The empty-text mask uses utf8_is_space: it must agree with str.isspace on every code point."""
    import sys

    import pyarrow as pa
    import pyarrow.compute as pc

    chars = [chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF]
    arrow = pc.utf8_is_space(pa.array(chars)).to_numpy(zero_copy_only=False)
    assert [c for c, a in zip(chars, arrow) if a != c.isspace()] == []
