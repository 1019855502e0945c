"""Several documents per decode call in the embedded backend: same grades as one at a time, on real documents."""

from __future__ import annotations

import pytest
from conftest import DOLMA, read_jsonl

from curator.llm import BackendConfig

pytest.importorskip("llama_cpp")
CHOICES = ["0", "1", "2", "3", "4", "5"]
PREFIX = (
    "Rate each extract for its educational value from 0 (none) to 5 (excellent).\n\n"
    "Extract: Photosynthesis turns light, water and carbon dioxide into glucose and oxygen in the chloroplasts.\nScore: 4\n\n"
    "Extract: Cheap pills!!! Click here to win a free phone. Home | Contact | Privacy\nScore: 0\n\n"
)


@pytest.fixture(scope="module")
def backend():
    from curator.llm.embedded import EmbeddedBackend

    b = EmbeddedBackend(BackendConfig(n_threads=2), batch_docs=4)
    yield b
    b.close()


@pytest.fixture(scope="module")
def suffixes():
    """Six real web documents, cut short (the case where packing pays)."""
    rows = [r["text"] for r in read_jsonl(DOLMA) if len(r["text"]) > 400][:6]
    return [f"Extract: {' '.join(t.split())[:300]}\nScore: " for t in rows]


def test_packed_grades_match_one_at_a_time(backend, suffixes):
    groups = backend._groups([(i, backend._tokens(s, bos=False)) for i, s in enumerate(suffixes)], 100)
    assert [len(g) for g in groups] == [4, 2]  # really packed: four sequences share a decode call
    packed = backend.grade(PREFIX, suffixes, CHOICES)
    backend.batch_docs = 1
    try:
        plain = backend.grade(PREFIX, suffixes, CHOICES)
    finally:
        backend.batch_docs = 4
    for a, b in zip(packed, plain):
        assert a.ok and b.ok and a.error is None
        assert abs(sum(a.distribution.values()) - 1) < 1e-9
        # not bit for bit: the attention sums run over the other documents' (masked) cells too
        for c in CHOICES:
            assert a.distribution[c] == pytest.approx(b.distribution[c], abs=0.06)
        assert a.expected == pytest.approx(b.expected, abs=0.15)
    # and not all alike: each document's own logits were read, in order
    assert len({round(a.expected, 3) for a in packed}) >= 4


def test_a_failed_batched_decode_falls_back_to_one_at_a_time(backend, suffixes, monkeypatch):
    def broken(*args):
        raise RuntimeError("llama_decode returned -3")

    monkeypatch.setattr(backend, "_evaluate_batch", broken)
    answers = backend.grade(PREFIX, suffixes[:3], CHOICES)
    assert all(a.ok and a.error is None for a in answers)
    assert backend._batch_prefix is None  # the batch cache is evaluated afresh next time


def test_a_new_prompt_replaces_the_shared_prefix(backend, suffixes):
    other = PREFIX.replace("educational value", "commercial intent")
    first = backend.grade(other, suffixes[:2], CHOICES)
    assert backend._batch_prefix == backend._tokens(other, bos=True)
    again = backend.grade(PREFIX, suffixes[:2], CHOICES)
    assert backend._batch_prefix == backend._tokens(PREFIX, bos=True)
    assert all(a.ok for a in first + again)
    assert [a.distribution for a in first] != [a.distribution for a in again]
