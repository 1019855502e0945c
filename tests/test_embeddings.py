"""The embedding engine: the installed all-MiniLM-L6-v2 (int8 ONNX) gives sentence vectors offline."""

from __future__ import annotations

import json

import numpy as np
import pytest

from curator.errors import ConfigError

pytest.importorskip("onnxruntime")
from curator.embeddings import TextEmbedder, default_files, label_texts, softmax  # noqa: E402


@pytest.fixture(scope="module")
def embedder():
    return TextEmbedder(threads=1)


def test_vectors_are_unit_length_and_mean_what_the_text_means(embedder):
    texts = ["The cat sat on the mat.", "A kitten was sitting on a rug.", "Shares of the bank fell 5% after its earnings report."]
    v = embedder.embed(texts)
    assert v.shape == (3, 384) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    sim = v @ v.T
    assert sim[0, 1] > 0.5 > sim[0, 2] + 0.2  # paraphrases close, unrelated text far


def test_batching_and_padding_do_not_change_a_vector(embedder):
    short = "Stocks rallied on Friday."
    long = " ".join(["The central bank kept interest rates unchanged while inflation slowed."] * 20)
    alone = embedder.embed([short])[0]
    mixed = embedder.embed([long, short, "", long[:50]])
    # the int8 model is deterministic; padding positions are masked out of the pool
    assert np.allclose(mixed[1], alone, atol=1e-4)
    assert np.isfinite(mixed).all() and mixed.shape[0] == 4


def test_long_odd_or_missing_text_is_embedded_not_refused(embedder):
    v = embedder.embed(["word " * 200_000, "a lone surrogate \ud800 in JSON-decoded text", "\x00\x01 control bytes", None])
    assert v.shape == (4, 384) and np.isfinite(v).all()


def test_model_files_come_from_installed_packages():
    model, tokenizer = default_files()
    assert model.is_file() and model.suffix == ".onnx"
    assert "model" in json.loads(tokenizer)


def test_paths_must_come_in_pairs_and_exist(tmp_path):
    with pytest.raises(ConfigError, match="both model"):
        TextEmbedder(model=str(tmp_path / "m.onnx"))
    with pytest.raises(ConfigError, match="does not exist"):
        TextEmbedder(model=str(tmp_path / "m.onnx"), tokenizer=str(tmp_path / "t.json"))


def test_label_texts_and_softmax():
    assert label_texts([{"name": "Sports", "description": "games"}, {"name": "World"}]) == ["Sports: games", "World: World"]
    p = softmax(np.array([[1000.0, 1000.0], [0.0, np.log(3.0)]]))
    assert np.allclose(p, [[0.5, 0.5], [0.25, 0.75]])
