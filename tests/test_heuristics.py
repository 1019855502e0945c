"""Columnar Gopher / C4 / FineWeb rules (plugins/heuristics.py) against datatrove's own classes on real text."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import DOLMA, SHARED_DATA, pipeline_file, read_jsonl

from curator.config import load_pipeline
from curator.runner import run_pipeline

pytest.importorskip("datatrove")
pytest.importorskip("spacy")

from datatrove.data import Document  # noqa: E402
from datatrove.pipeline.filters import (  # noqa: E402
    C4QualityFilter,
    FineWebQualityFilter,
    GopherQualityFilter,
    GopherRepetitionFilter,
)
from datatrove.utils.text import split_into_words  # noqa: E402

from curator_plugins import heuristics as H  # noqa: E402

WEBORG = SHARED_DATA / "web" / "weborganizer_examples.jsonl.gz"

# step -> (datatrove filter, curator function, parameters)
CONFIGS = {
    "gopher_quality": (GopherQualityFilter, H.gopher_quality, {}),
    "gopher_repetition": (GopherRepetitionFilter, H.gopher_repetition, {}),
    "fineweb_quality": (FineWebQualityFilter, H.fineweb_quality, {}),
    "c4_quality": (C4QualityFilter, H.c4_quality, {}),
    # the demo pipeline's setting
    "c4_quality_no_terminal_punct": (C4QualityFilter, H.c4_quality, {"filter_no_terminal_punct": False}),
}


def verdict(result) -> tuple[bool, str | None]:
    return (bool(result[0]), result[1]) if isinstance(result, tuple) else (bool(result), None)


@pytest.fixture(scope="module")
def docs():
    """200 real documents: 100 Common Crawl (dolma, multilingual) + 100 WebOrganizer pages.

    datatrove is the slow side here (~20-100 docs/s); bench/bench_heuristics.py
    --agreement compares all 11,589 documents of both files.
    """
    rows = read_jsonl(DOLMA, 100) + read_jsonl(WEBORG, 100)
    return [str(r["id"]) for r in rows], [r["text"] for r in rows]


@pytest.fixture(scope="module")
def datatrove_verdicts(docs):
    """datatrove's verdicts, filter by filter per document (its word cache serves the filters of one document)."""
    filters = {name: cls(**params) for name, (cls, _, params) in CONFIGS.items()}
    out: dict[str, list] = {name: [] for name in CONFIGS}
    for doc_id, text in zip(*docs):
        for name, f in filters.items():
            out[name].append(verdict(f.filter(Document(text=text, id=doc_id, metadata={}))))
    return out


@pytest.mark.parametrize("name", list(CONFIGS))
def test_same_decisions_and_reasons_as_datatrove(name, docs, datatrove_verdicts):
    ids, texts = docs
    _, fn, params = CONFIGS[name]
    keep, reasons = fn(texts, ids, **params)
    ours = [(bool(k), None if k else r) for k, r in zip(keep, reasons)]
    theirs = datatrove_verdicts[name]
    decisions = sum(a[0] == b[0] for a, b in zip(ours, theirs)) / len(ids)
    same_reason = sum(a == b for a, b in zip(ours, theirs)) / len(ids)
    assert decisions >= 0.995, [(i, a, b) for i, (a, b) in enumerate(zip(ours, theirs)) if a != b][:10]
    assert same_reason >= 0.995
    # the sample exercises the filter: a real share of rejections, several reasons
    rejected = [r for ok, r in theirs if not ok]
    assert 0.05 < len(rejected) / len(ids) < 0.95
    assert len(set(rejected)) >= (1 if name.startswith("c4") else 3)


def test_tokeniser_matches_spacy_word_for_word(docs):
    ids, texts = docs
    sample = texts[::4]
    identical = sum(H.split_words(t) == split_into_words(t) for t in sample)
    assert identical / len(sample) >= 0.995


def test_fast_path_chunks_match_spacy():
    """Chunks tokenised without spaCy (words with brackets, quotes, trailing punctuation) split as spaCy splits them."""
    import spacy

    nlp = spacy.blank("en")
    voc = H.WordVocab()
    cases = [
        "hello",
        "hello,",
        "hello.",
        "Hello.",
        "world!",
        "word)",
        "cannot",
        "cannot,",
        "gonna",
        "etc.",
        "e.g.",
        "Mr.",
        "U.S.",
        "don't",
        "US.",
        "abc;",
        "naïve",
        "naïve.",
        "абмежаванняў.",
        "''For",
        "'s",
        "3.5",
        "5km",
        "well-known",
        "http://example.com/a.b",
        "end.Next",
        "A.",
        "vs.",
        "...",
        "Jan.",
        "p.m.",
        "ok:",
        "Bros.,",
        "St.)",
        "word:)",
        "(:",
        "company's",
        "it's",
        "e-mail",
        "state-of-the-art.",
        "(word),",
        '"quoted."',
        "café,",
        "café.",
        "1999.",
        "2019,",
        "10:30",
        "COVID-19",
        "x.",
        "USA.",
        "(see",
        "end.)",
        "ab's.",
    ]
    for chunk in cases:
        assert [voc.tokens[t] for t in voc.chunk_tokens(chunk)] == [t.text for t in nlp.tokenizer(chunk)], chunk


def test_words_are_shared_between_filters_of_one_pass(docs):
    ids, texts = docs
    H._WORD_CACHE.clear()
    H.gopher_quality(texts[:50], ids[:50])
    assert all((i, t) in H._WORD_CACHE for i, t in zip(ids[:50], texts[:50]))
    # a later filter of the pass gets a subset of the rows in a new table: served from the cache
    before = H.vocab().chunk_start.size
    bw = H.batch_words(ids[10:20], texts[10:20])
    assert H.vocab().chunk_start.size == before
    assert [H.vocab().tokens[t] for t in bw.doc_tokens(0)] == split_into_words(texts[10])
    # same id, different text: not served from the cache
    other = H.batch_words([ids[10]], ["a different text entirely"])
    assert [H.vocab().tokens[t] for t in other.doc_tokens(0)] == ["a", "different", "text", "entirely"]


PROSE = "The cat sat on the mat and looked at the birds with great interest. " * 12


@pytest.mark.parametrize(
    "text, reason",
    [
        ("Too short to keep, with the word and the cat.", "gopher_short_doc"),
        ("a b c d e f g h i j " * 10 + " the and of", "gopher_below_avg_threshold"),
        (" ".join(["internationalisation", "characteristically", "the", "and"] * 20), "gopher_above_avg_threshold"),
        (PROSE + " #tag" * 40, "gopher_too_many_hashes"),
        (PROSE + " wait..." * 40, "gopher_too_many_ellipsis"),
        ("\n".join(["- the item number one is good and fine"] * 30), "gopher_too_many_bullets"),
        (PROSE + "\n" + "\n".join(["and then the story goes on and on with the cat…"] * 8), "gopher_too_many_end_ellipsis"),
        (PROSE + " 123456 789012" * 60, "gopher_below_alpha_threshold"),
        ("Cats sit on mats. " * 40, "gopher_enough_stop_words"),
        (PROSE, None),
    ],
)
def test_gopher_quality_rule(text, reason):
    keep, reasons = H.gopher_quality([text])
    assert verdict(GopherQualityFilter().filter(Document(text=text, id="x"))) == (reason is None, reason)
    assert (bool(keep[0]), reasons[0]) == (reason is None, reason)


LINES = [f"Line {i}: the quick brown fox {i} jumps over {i * 7} lazy dogs near the river bank." for i in range(20)]


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", "empty"),
        ("\n\n".join(["same paragraph here"] * 5 + LINES[:3]), "dup_para_frac"),
        ("\n\n".join(LINES[:12] + [" ".join(f"w{i}" for i in range(150))] * 2), "dup_para_char_frac"),
        ("\n".join(["same line", "other"] * 4 + LINES[:4]), "dup_line_frac"),
        ("\n".join(LINES[:8] + [" ".join(f"v{i}" for i in range(150))] * 2), "dup_line_char_frac"),
        (" ".join(f"of the {w}" for w in "abcdefghijklmnopqrstuvwxyz"), "top_2_gram"),
        (" ".join(f"filler{i}" for i in range(60)) + " " + " ".join(f"ab cd efghijklmnop z{i}" for i in range(12)), "top_3_gram"),
        (" ".join([" ".join(f"w{i}x" for i in range(100))] * 2), "duplicated_5_n_grams"),
        (PROSE.replace(". ", f". {'x' * 3} ", 1), "top_4_gram"),
        (" ".join(f"word{i}" for i in range(200)), None),
    ],
)
def test_gopher_repetition_rule(text, reason):
    expected = verdict(GopherRepetitionFilter().filter(Document(text=text, id="x")))
    keep, reasons = H.gopher_repetition([text])
    assert (bool(keep[0]), reasons[0]) == expected
    assert expected == (reason is None, reason)


@pytest.mark.parametrize(
    "text, reason",
    [
        ("\n \n", "empty"),
        ("\n".join(["no punctuation on this line at all"] * 10), "line_punct_ratio"),
        ("\n".join(["Short line."] * 10 + ["A much longer line that ends with a full stop, as prose does."] * 2), "short_line_ratio"),
        ("\n".join(LINES[:5] + [LINES[0]]), "char_dup_ratio"),
        ("\n".join(f"Internationalization characterization{i}." for i in range(40)), "list_ratio"),
        ("\n".join(LINES), None),
    ],
)
def test_fineweb_quality_rule(text, reason):
    expected = verdict(FineWebQualityFilter().filter(Document(text=text, id="x")))
    keep, reasons = H.fineweb_quality([text])
    assert (bool(keep[0]), reasons[0]) == expected
    assert expected[0] == (reason is None) and (reason is None or expected[1] == reason)


SENTENCES = "The first sentence is here. A second one follows! Is this the third? Yes, the fourth. And the fifth."


@pytest.mark.parametrize(
    "text, params, reason",
    [
        (SENTENCES, {}, None),
        ("Only two sentences here. And here.", {}, "too_few_sentences"),
        (SENTENCES + "\nLorem ipsum dolor sit amet.", {}, "lorem_ipsum"),
        (SENTENCES + "\nThe code is { here } for you.", {}, "curly_bracket"),
        ("Enable javascript to see it. Please do. Now. Then. Again.\n" + SENTENCES[:60], {}, "too_few_sentences"),
        ("e.g. this is one. U.S. is one word. 3.5 is one. Mr. Smith is here.", {}, "too_few_sentences"),
        ("One.  Two is here. Three is here.  Four is here... five is here? six! seven [1].", {"filter_no_terminal_punct": False}, None),
        ('The end." Next one starts. "Quoted." More text here! Last (one).', {}, None),
        ("Read our privacy policy now. It is here. And here. And there. Or there.", {}, "too_few_sentences"),
    ],
)
def test_c4_quality_rule(text, params, reason):
    expected = verdict(C4QualityFilter(**params).filter(Document(text=text, id="x")))
    keep, reasons = H.c4_quality([text], **params)
    assert (bool(keep[0]), reasons[0]) == expected
    assert expected == (reason is None, reason)


STEPS = """
steps:
  - step: gopher_repetition
    {impl}
  - step: gopher_quality
    {impl}
  - step: fineweb_quality
    {impl}
  - step: c4_quality
    filter_no_terminal_punct: false
    {impl}
"""


def test_steps_default_to_columnar_and_impl_datatrove_gives_the_same_run(tmp_path, dolma_rows):
    shard = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pylist(dolma_rows[:150]), shard)
    results = {}
    for impl in ("", "impl: datatrove"):
        pipe = load_pipeline(pipeline_file(tmp_path, STEPS.format(impl=impl), f"p{len(results)}.yaml"))
        run_dir = tmp_path / f"run{len(results)}"
        run_pipeline(pipe, run_dir, inputs=[str(shard)], progress=False)
        with duckdb.connect(str(run_dir / "curator.duckdb"), read_only=True) as con:
            kept = {r[0] for r in con.execute("SELECT id FROM kept").fetchall()}
            rejected = dict(con.execute("SELECT id, reject_step || ':' || reject_reason FROM rejected").fetchall())
        assert len(kept) + len(rejected) == 150
        results[impl or "curator"] = (kept, rejected)
    assert results["curator"][0] == results["impl: datatrove"][0]
    assert results["curator"][1] == results["impl: datatrove"][1]
    assert 10 < len(results["curator"][0]) < 140


def test_impl_parameter(registry):
    cls = registry.lookup("gopher_quality").cls
    fast = cls()
    fast.setup()
    assert fast._fast is H.gopher_quality
    slow = cls(impl="datatrove")
    slow.setup()
    assert slow._fast is None and type(slow._filter).__name__ == "GopherQualityFilter"
    # languages other than English run datatrove's class whatever impl says
    other = cls(language="fr")
    other.setup()
    assert other._fast is None
    with pytest.raises(Exception, match="impl"):
        cls(impl="fastest")
