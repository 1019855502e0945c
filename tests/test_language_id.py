"""language_id with the real lid.176 model on the real multilingual dolma sample."""

from __future__ import annotations

from collections import Counter

import duckdb
import pytest
from conftest import DOLMA, pipeline_file, read_jsonl

from curator.config import load_pipeline
from curator.errors import ConfigError
from curator.runner import run_pipeline
from curator_plugins.language_id import bundled_lid176

pytest.importorskip("fasttext")

LABEL = """
steps:
  - step: language_id
    name: lid
"""


def run(tmp_path, text, inputs, name="run"):
    pipe = load_pipeline(pipeline_file(tmp_path, text, f"{name}.yaml"))
    return tmp_path / name, run_pipeline(pipe, tmp_path / name, inputs=[str(i) for i in inputs], progress=False)


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lid")
    run_dir, _ = run(tmp, LABEL, [DOLMA])
    with duckdb.connect(str(run_dir / "curator.duckdb"), read_only=True) as con:
        rows = con.execute("SELECT id, lid__lang, lid__lang_score FROM kept").fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def test_labels_every_document_and_keeps_all(labelled):
    assert len(labelled) == 697
    langs = Counter(lang for lang, _ in labelled.values())
    # the sample is mostly English with a real multilingual tail
    assert langs.most_common(1)[0][0] == "en"
    assert len(langs) >= 10
    assert all(0 < score <= 1 for _, score in labelled.values())


def test_agrees_with_datatrove_language_filter(labelled, monkeypatch):
    """Same model file, same documents: datatrove's LanguageFilter gives the same language on >= 99 %."""
    from datatrove.data import Document
    from datatrove.pipeline.filters import LanguageFilter
    from datatrove.utils import lid

    # datatrove would download lid.176.bin; hand it the same local file we use
    monkeypatch.setattr(lid, "cached_asset_path_or_download", lambda *a, **k: str(bundled_lid176()))
    step = LanguageFilter(label_only=True)
    docs = [Document(text=r["text"], id=r["id"]) for r in read_jsonl(DOLMA)]
    same = close = 0
    for doc in step.run(iter(docs)):
        lang, score = labelled[doc.id]
        same += doc.metadata["language"] == lang
        close += abs(doc.metadata["language_score"] - score) < 1e-4
    assert same / len(docs) >= 0.99, same
    assert close / len(docs) >= 0.99, close


FILTER = """
steps:
  - step: language_id
    name: lid
    languages: [en, de]
    min_score: 0.65
    thresholds: {de: 0.9}
"""


def test_filter_rejects_with_reasons_and_keeps_scores(tmp_path, labelled):
    run_dir, stats = run(tmp_path, FILTER, [DOLMA])
    with duckdb.connect(str(run_dir / "curator.duckdb"), read_only=True) as con:
        kept = con.execute("SELECT id, lid__lang, lid__lang_score FROM kept").fetchall()
        rejected = con.execute("SELECT id, reject_reason, lid__lang, lid__lang_score FROM rejected").fetchall()
    assert len(kept) + len(rejected) == 697
    for _, lang, score in kept:
        assert (lang == "en" and score >= 0.65) or (lang == "de" and score >= 0.9)
    for doc_id, reason, lang, score in rejected:
        assert labelled[doc_id][0] == lang  # the label is kept in the rejected row for re-tuning
        if lang in ("en", "de"):
            assert reason == f"language_score:{lang}" and score < (0.9 if lang == "de" else 0.65)
        else:
            assert reason == f"language:{lang}"
    expected_kept = sum(1 for lang, s in labelled.values() if (lang == "en" and s >= 0.65) or (lang == "de" and s >= 0.9))
    assert len(kept) == expected_kept
    assert len(rejected) > 20  # the cut really removes documents


def test_bad_model_path_and_thresholds_are_clear_errors(tmp_path):
    pipe = load_pipeline(pipeline_file(tmp_path, "steps:\n  - step: language_id\n    model: /nowhere/lid.bin\n"))
    with pytest.raises(ConfigError, match="/nowhere/lid.bin"):
        run_pipeline(pipe, tmp_path / "run", inputs=[str(DOLMA)], progress=False)
    with pytest.raises(ConfigError, match="thresholds"):
        load_pipeline(pipeline_file(tmp_path, "steps:\n  - step: language_id\n    thresholds: {en: 2}\n", "b.yaml"), _registry())


def _registry():
    from curator.plugins import get_registry

    return get_registry()
