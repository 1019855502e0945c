"""The perplexity plugin: SentencePiece + KenLM trained in the test on real reference text."""

from __future__ import annotations

import json
import math

import duckdb
import pytest
from conftest import DOLMA, SHARED_DATA, curator_cli, pipeline_file, write_jsonl

from curator.config import load_pipeline
from curator.runner import run_pipeline
from curator_plugins.perplexity import PerplexityModel, find_tool, normalize_line

kenlm = pytest.importorskip("kenlm")
pytest.importorskip("sentencepiece")
try:
    find_tool("lmplz")
except Exception:  # pragma: no cover - make setup builds it
    pytest.skip("KenLM's lmplz is not built (run scripts/build_kenlm.sh)", allow_module_level=True)

PYDOCS = SHARED_DATA / "reference" / "python311_docs.jsonl.gz"

TRAIN = f"""
steps:
  - step: kenlm_train
    name: lm
    reference: ["{PYDOCS}"]
    order: 3
    vocab_size: 2000
  - step: perplexity
    lm: ${{lm.lm_path}}
    sp: ${{lm.sp_path}}
  - step: perplexity_cutoffs
    name: cutoffs
  - step: perplexity_buckets
    name: buckets
    column: perplexity__ppl
    head_max: ${{cutoffs.head_max}}
    middle_max: ${{cutoffs.middle_max}}
    keep_buckets: [head, middle]
"""


@pytest.fixture(scope="module")
def ppl_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ppl")
    pipe = pipeline_file(tmp, TRAIN)
    curator_cli("run", str(pipe), "-i", str(DOLMA), "-o", str(tmp / "run"), "-q")
    return tmp / "run"


def test_ccnet_normalisation():
    assert normalize_line("  Héllo WORLD 1984 — «Ça»\x07 ") == 'hello world 0000  -  "ca"'
    assert normalize_line("١٢٣ digits") == "000 digits"  # any script's digits
    assert normalize_line("   ") == ""


def test_scores_follow_ccnets_formula(ppl_run):
    result = json.loads((ppl_run / "artifacts" / "lm" / "result.json").read_text())["result"]
    model = kenlm.Model(result["lm_path"])
    import sentencepiece

    sp = sentencepiece.SentencePieceProcessor(model_file=result["sp_path"])
    con = duckdb.connect(str(ppl_run / "curator.duckdb"), read_only=True)
    for text, ppl in con.execute("SELECT text, perplexity__ppl FROM documents WHERE perplexity__ppl IS NOT NULL ORDER BY id LIMIT 10").fetchall():
        log_score, length = 0.0, 0
        for line in text.split("\n"):
            line = normalize_line(line)
            if not line:
                continue
            pieces = sp.encode(line, out_type=str)
            log_score += model.score(" ".join(pieces))
            length += len(pieces) + 1
        assert ppl == pytest.approx(10 ** (-log_score / length), rel=1e-9)


def test_buckets_from_corpus_percentiles(ppl_run):
    con = duckdb.connect(str(ppl_run / "curator.duckdb"), read_only=True)
    cut = json.loads((ppl_run / "artifacts" / "cutoffs" / "result.json").read_text())["result"]
    q30, q60 = con.execute("SELECT quantile_cont(perplexity__ppl, 0.3), quantile_cont(perplexity__ppl, 0.6) FROM documents").fetchone()
    assert cut["head_max"] == pytest.approx(q30) and cut["middle_max"] == pytest.approx(q60)
    kept = dict(con.execute("SELECT buckets__bucket, count(*) FROM kept GROUP BY 1").fetchall())
    assert set(kept) == {"head", "middle"}
    tail = con.execute("SELECT count(*), min(perplexity__ppl) FROM rejected WHERE reject_reason = 'perplexity_bucket_tail'").fetchone()
    assert tail[0] > 0 and tail[1] > cut["middle_max"]
    total = con.execute("SELECT count(*) FROM documents").fetchone()[0]
    assert total == 697
    # about 30 % head, 30 % middle of the scored documents
    assert abs(kept["head"] - kept["middle"]) < 0.05 * total


def test_reference_like_text_scores_lower_than_spam(ppl_run):
    result = json.loads((ppl_run / "artifacts" / "lm" / "result.json").read_text())["result"]
    model = PerplexityModel(result["lm_path"], result["sp_path"])
    clean, spam = model.score_documents(
        [
            "The function returns a list of the values in the dictionary, in insertion order.",
            "cheap viagra casino bonus click here free free free $$$ 100% best price buy now",
        ],
        100_000,
    )
    assert clean < spam


def test_models_are_reused_on_rerun(ppl_run):
    lm = ppl_run / "artifacts" / "lm" / "lm.bin"
    before = lm.stat().st_mtime_ns
    curator_cli("run", str(ppl_run / "pipeline.yaml"), "-i", str(DOLMA), "-o", str(ppl_run), "-q")
    assert lm.stat().st_mtime_ns == before


def test_existing_model_pair_and_max_ppl_with_awkward_text(ppl_run, tmp_path, registry):
    """Load an existing .bin + .sp.model pair (as CCNet users have) and feed it odd documents."""
    result = json.loads((ppl_run / "artifacts" / "lm" / "result.json").read_text())["result"]
    rows = [
        {"id": "empty", "text": ""},
        {"id": "digits", "text": "1234567890 0987654321"},
        {"id": "symbols", "text": "!!! ??? ### $$$ %%% ^^^"},
        {"id": "mixed", "text": "English words, русские слова, 中文字符, العربية"},
        {"id": "huge_line", "text": "word " * 10_000_000},  # one 50 MB line
        {"id": "normal", "text": "The module defines the following functions and classes."},
    ]
    write_jsonl(tmp_path / "odd.jsonl", rows)
    text = f"steps:\n  - step: perplexity\n    lm: {result['lm_path']}\n    sp: {result['sp_path']}\n    max_ppl: 1000000\n"
    pipe = load_pipeline(pipeline_file(tmp_path, text), registry)
    summary = run_pipeline(pipe, tmp_path / "run", inputs=[str(tmp_path / "odd.jsonl")], progress=False)
    con = duckdb.connect(str(tmp_path / "run" / "curator.duckdb"), read_only=True)
    ppl = dict(con.execute("SELECT id, perplexity__ppl FROM documents").fetchall())
    assert ppl["empty"] is None
    assert all(math.isfinite(v) and v > 1 for k, v in ppl.items() if k != "empty")
    assert dict(con.execute("SELECT id, reject_reason FROM rejected").fetchall()) == {"empty": "no_scorable_text"}
    assert not con.execute("SELECT count(*) FROM documents WHERE isnan(perplexity__ppl)").fetchone()[0]
    assert summary["balanced"]


def test_max_ppl_rejects_with_reason(ppl_run, tmp_path, registry):
    result = json.loads((ppl_run / "artifacts" / "lm" / "result.json").read_text())["result"]
    con = duckdb.connect(str(ppl_run / "curator.duckdb"), read_only=True)
    median, above, unscored = con.execute(
        "WITH m AS (SELECT median(perplexity__ppl) AS m FROM documents) "
        "SELECT any_value(m.m), count(*) FILTER (WHERE perplexity__ppl > m.m), count(*) FILTER (WHERE perplexity__ppl IS NULL) FROM documents, m"
    ).fetchone()
    text = f"steps:\n  - step: perplexity\n    lm: {result['lm_path']}\n    sp: {result['sp_path']}\n    max_ppl: {median}\n"
    pipe = load_pipeline(pipeline_file(tmp_path, text), registry)
    summary = run_pipeline(pipe, tmp_path / "run", inputs=[str(DOLMA)], progress=False)
    reasons = next(f for f in summary["funnel"] if f["step"] == "perplexity")["reasons"]
    assert reasons == {"perplexity_above_max": above, "no_scorable_text": unscored}
    assert summary["kept"] + summary["rejected"] == 697
