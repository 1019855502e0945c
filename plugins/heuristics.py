"""Columnar Gopher, C4 and FineWeb quality rules: datatrove's decisions, several times faster.

datatrove spends 85-93 % of its heuristic filters in spaCy: every document is
run through ``spacy.blank("en")`` to get its words. spaCy's tokeniser is
context free per whitespace-separated chunk (it caches by chunk itself), so
this module asks spaCy only once per *distinct* chunk (a batch's unseen chunks
go through the tokenizer in one call) and keeps the answer in a vocabulary:
chunk -> token ids, token id -> length / symbol / alphabetic / punctuation
flags. A batch then costs one ``str.split`` per document, one dict lookup per
chunk and numpy over token ids; words are the same strings datatrove sees.

Per-document statistics are shared by the filters of a fused pass through
:func:`batch_words` (a small cache keyed by document id and text, since each
filter receives the rows the previous one kept as a new table).

The rules themselves follow datatrove 0.10 line by line (order, thresholds,
``x and ...`` meaning "0/None disables", reasons); differences are listed in
docs/benchmarks.md.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from itertools import repeat
from typing import Any

import numpy as np

# datatrove's own character sets, so the rules agree when datatrove changes them
from datatrove.utils.text import PUNCTUATION_SET, TERMINAL_PUNCTUATION

# spaCy's Sentencizer.default_punct_chars (sentence ends), read lazily from spaCy
_SENT_PUNCT: frozenset[str] | None = None


def _sentence_punct() -> frozenset[str]:
    global _SENT_PUNCT
    if _SENT_PUNCT is None:
        from spacy.pipeline import Sentencizer

        _SENT_PUNCT = frozenset(Sentencizer.default_punct_chars)
    return _SENT_PUNCT


def _is_punct(text: str) -> bool:
    """spaCy's ``is_punct`` lexical attribute (every character in a Unicode P* category)."""
    import unicodedata

    return all(unicodedata.category(ch).startswith("P") for ch in text)


class _Grow:
    """A numpy array that grows by doubling (appends are amortised O(1))."""

    def __init__(self, dtype: Any) -> None:
        self.data = np.zeros(1024, dtype=dtype)
        self.size = 0

    def extend(self, values: Sequence[Any] | np.ndarray) -> None:
        need = self.size + len(values)
        if need > len(self.data):
            new = np.zeros(max(need, 2 * len(self.data)), dtype=self.data.dtype)
            new[: self.size] = self.data[: self.size]
            self.data = new
        self.data[self.size : need] = values
        self.size = need

    @property
    def view(self) -> np.ndarray:
        return self.data[: self.size]


_OPEN = frozenset('(["')
_CLOSE = frozenset(',;:!?)]".')


class WordVocab:
    """spaCy's English word tokenisation, one spaCy call per distinct chunk, cached.

    Chunk ids and token ids are positions in growing arrays; the vocabulary is
    dropped and rebuilt when it passes ``max_chunks`` so memory stays bounded.
    """

    def __init__(self, language: str = "en", max_chunks: int = 2_000_000) -> None:
        self.language = language
        self.max_chunks = max_chunks
        self._nlp: Any = None
        self.reset()

    def reset(self) -> None:
        self.chunk_ids: dict[str, int] = {}
        self.chunk_start = _Grow(np.int64)  # first token of the chunk in tok_pool
        self.chunk_len = _Grow(np.int64)  # tokens in the chunk
        self.tok_pool = _Grow(np.int64)
        self.token_ids: dict[str, int] = {}
        self.tokens: list[str] = []
        self.tok_len = _Grow(np.int64)
        self.tok_nonsym = _Grow(np.bool_)  # a character outside datatrove's PUNCTUATION_SET
        self.tok_alpha = _Grow(np.bool_)  # an alphabetic character
        self.tok_punct = _Grow(np.bool_)  # spaCy is_punct
        self.tok_sentend = _Grow(np.bool_)  # in the sentencizer's punct_chars
        self.generation = getattr(self, "generation", 0) + 1

    @property
    def nlp(self) -> Any:
        if self._nlp is None:
            import spacy

            nlp = spacy.blank(self.language)
            # lexical attributes (like_num, is_stop...) are not used here and cost
            # half of the tokenizer's time on unseen words
            nlp.vocab.lex_attr_getters = {}  # type: ignore[attr-defined]  # a Cython attribute spaCy's stubs omit
            self._nlp = nlp
            # spaCy types Language.tokenizer as any callable; a blank pipeline's is a Tokenizer, which has rules
            self._rules = set(nlp.tokenizer.rules or {})  # type: ignore[union-attr]
        return self._nlp

    def _token_ids(self, toks: list[str]) -> list[int]:
        """Ids of ``toks``, adding the new ones with their flags (in one numpy append per flag)."""
        ids = self.token_ids
        new = list(dict.fromkeys(t for t in toks if t not in ids))
        if new:
            base = len(self.tokens)
            ids.update(zip(new, range(base, base + len(new))))
            self.tokens.extend(new)
            sent = _sentence_punct()
            self.tok_len.extend([len(t) for t in new])
            self.tok_nonsym.extend([any(ch not in PUNCTUATION_SET for ch in t) for t in new])
            self.tok_alpha.extend([any(ch.isalpha() for ch in t) for t in new])
            self.tok_punct.extend([_is_punct(t) for t in new])
            self.tok_sentend.extend([t in sent for t in new])
        return [ids[t] for t in toks]

    def _fast_tokens(self, chunk: str) -> list[str] | None:
        """spaCy's answer for the commonest chunk shapes without asking spaCy, or None.

        Shapes: opening ( [ " then a core (letters; ASCII words joined by
        hyphens; ASCII digits), then closing , ; : ! ? ) ] " and "." (split
        after a lowercase ASCII letter, a digit or a closing mark, as spaCy's
        suffix rules do) or a possessive 's. Anything that is, or whose pieces
        could join into, a special case ("cannot", "Bros.", ":)") goes to spaCy.
        Checked against spaCy on every distinct chunk of the 11,589-document
        agreement corpus (tests/test_heuristics.py checks a sample).
        """
        rules = self._rules if self._nlp is not None else (self.nlp and self._rules)
        if chunk in rules:
            return None
        if chunk.isalpha():
            return [chunk]
        n = len(chunk)
        start, end = 0, n
        while start < end and chunk[start] in _OPEN:
            start += 1
        while end > start and chunk[end - 1] in _CLOSE:
            end -= 1
        possessive = chunk[end - 2 : end] in ("'s", "’s") and end - 2 > start
        if possessive:
            end -= 2
        core = chunk[start:end]
        if not core:
            return None
        if core.isalpha() or (core.isascii() and core.isdigit()):
            pieces = [core]
        elif core.isascii() and "-" in core and all(p.isalpha() for p in core.split("-")):
            # spaCy's infix rule splits hyphens between letters
            pieces = []
            for p in core.split("-"):
                pieces += [p, "-"]
            pieces.pop()
        else:
            return None
        tail = chunk[end + 2 if possessive else end :]
        if "." in tail:
            # "." splits after a lowercase letter, digit or closing mark; after one
            # capital ("A.") or in ".." spaCy has other rules
            k = tail.index(".")
            before = tail[k - 1] if k else ("s" if possessive else core[-1])
            if ".." in tail or not ((before.isascii() and before.islower()) or before.isdigit() or before in _CLOSE):
                return None
        # what spaCy's affix loop may meet on the way to the core ("Bros.," -> "Bros.")
        if any(chunk[i:j] in rules for i in range(start + 1) for j in range(end, n + 1)):
            return None
        tokens = list(chunk[:start]) + pieces + ([chunk[end : end + 2]] if possessive else []) + list(tail)
        # tokens that spaCy's special-case matcher would join again (emoticons such as ":)")
        k = len(tokens)
        if k > 1 and any("".join(tokens[i:j]) in rules for i in range(k) for j in range(i + 2, k + 1)):
            return None
        return tokens

    def _spacy_tokens(self, chunks: list[str]) -> list[list[str]]:
        """Tokens of each chunk, as spaCy's English tokenizer splits it."""
        nlp = self.nlp
        out: list[list[str] | None] = [self._fast_tokens(c) for c in chunks]
        slow = [c for c, toks in zip(chunks, out) if toks is None]
        if not slow:
            return out  # type: ignore[return-value]
        # One call per chunk: spaCy's answer for a chunk can depend on its neighbours
        # and its cache when the chunk starts with a special case such as "''".
        tokenizer = nlp.tokenizer
        got: list[list[str]] = []
        with nlp.memory_zone():
            for chunk in slow:
                nlp.max_length = max(nlp.max_length, len(chunk) + 10)
                try:
                    toks = [t.text for t in tokenizer(chunk)]
                except Exception:  # noqa: BLE001 (spaCy chokes on "IS_ALPHA"; datatrove drops it and retries)
                    toks = [t.text for t in tokenizer(chunk.replace("IS_ALPHA", ""))]
                got.append([t for t in (s.strip() for s in toks) if t])
        it = iter(got)
        return [toks if toks is not None else next(it) for toks in out]

    def add_chunks(self, chunks: list[str]) -> None:
        per_chunk = self._spacy_tokens(chunks)
        flat = self._token_ids([t for toks in per_chunk for t in toks])
        lens = [len(toks) for toks in per_chunk]
        first = self.chunk_start.size
        self.chunk_ids.update(zip(chunks, range(first, first + len(chunks))))
        starts = np.concatenate(([0], np.cumsum(lens)[:-1])) + self.tok_pool.size
        self.chunk_start.extend(starts)
        self.chunk_len.extend(lens)
        self.tok_pool.extend(flat)

    def chunk_id_array(self, chunks: list[str]) -> np.ndarray:
        get = self.chunk_ids.get
        ids = list(map(get, chunks, repeat(-1, len(chunks))))
        arr = np.array(ids, dtype=np.int64)
        if len(arr) and arr.min() < 0:
            missing = [chunks[i] for i in np.flatnonzero(arr < 0)]
            self.add_chunks(list(dict.fromkeys(missing)))
            arr = np.array(list(map(get, chunks)), dtype=np.int64)
        return arr

    def words(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Token ids of ``texts`` concatenated, and offsets (len(texts)+1) into them per text."""
        per_doc = [t.split() for t in texts]
        n_chunks = np.fromiter(map(len, per_doc), dtype=np.int64, count=len(per_doc))
        flat = [c for chunks in per_doc for c in chunks]
        cids = self.chunk_id_array(flat)
        clen = self.chunk_len.view[cids]
        cstart = self.chunk_start.view[cids]
        chunk_off = np.concatenate(([0], np.cumsum(clen)))
        total = int(chunk_off[-1])
        if total == len(cids):  # every chunk one token (the common case for short texts)
            toks = self.tok_pool.view[cstart]
        else:
            pos = np.repeat(cstart - chunk_off[:-1], clen) + np.arange(total)
            toks = self.tok_pool.view[pos]
        doc_chunk_off = np.concatenate(([0], np.cumsum(n_chunks)))
        return toks, chunk_off[doc_chunk_off]

    def chunk_tokens(self, chunk: str) -> np.ndarray:
        cid = self.chunk_ids.get(chunk)
        if cid is None:
            self.add_chunks([chunk])
            cid = self.chunk_ids[chunk]
        start = self.chunk_start.data[cid]
        return self.tok_pool.data[start : start + self.chunk_len.data[cid]]


_VOCABS: dict[str, WordVocab] = {}


def vocab(language: str = "en") -> WordVocab:
    # datatrove names English "eng" (its default) and tokenises it with spaCy "en"
    language = "en" if language in ("en", "eng", "eng_Latn") else language
    if language not in _VOCABS:
        _VOCABS[language] = WordVocab(language)
    return _VOCABS[language]


class BatchWords:
    """Words of one batch: token ids, offsets per document, and per-document counts."""

    def __init__(self, voc: WordVocab, texts: Sequence[str]) -> None:
        self.vocab = voc
        self.generation = voc.generation
        self.tokens, self.offsets = voc.words(texts)
        self.counts = np.diff(self.offsets)
        self.doc_of_token = np.repeat(np.arange(len(texts)), self.counts)

    def per_doc_sum(self, values: np.ndarray) -> np.ndarray:
        return np.bincount(self.doc_of_token, weights=values, minlength=len(self.counts))

    def doc_tokens(self, i: int) -> np.ndarray:
        return self.tokens[self.offsets[i] : self.offsets[i + 1]]


# Shared between the filters of one fused pass: document (id, text) -> its word token ids.
# Each filter gets the rows the previous one kept as a new table, so the key is
# the row, not the batch. Bounded: the cache is cleared when it grows past a few batches.
_WORD_CACHE: dict[tuple[Any, str], np.ndarray] = {}
_WORD_CACHE_GEN = [0]
_WORD_CACHE_MAX = 20_000


def batch_words(ids: Sequence[Any] | None, texts: Sequence[str], language: str = "en") -> BatchWords:
    """Words of ``texts``, reusing what an earlier filter of the pass computed for the same rows."""
    voc = vocab(language)
    if len(voc.chunk_ids) > voc.max_chunks:
        voc.reset()
    if ids is None:
        return BatchWords(voc, texts)
    if _WORD_CACHE_GEN[0] != voc.generation or len(_WORD_CACHE) > _WORD_CACHE_MAX:
        _WORD_CACHE.clear()
        _WORD_CACHE_GEN[0] = voc.generation
    keys = list(zip(ids, texts))
    cached = [_WORD_CACHE.get(k) for k in keys]
    if all(c is not None for c in cached):
        bw = BatchWords.__new__(BatchWords)
        bw.vocab = voc
        bw.generation = voc.generation
        bw.counts = np.fromiter((len(c) for c in cached), dtype=np.int64, count=len(cached))  # type: ignore[arg-type]
        bw.offsets = np.concatenate(([0], np.cumsum(bw.counts)))
        bw.tokens = np.concatenate(cached) if cached else np.zeros(0, np.int64)  # type: ignore[arg-type]
        bw.doc_of_token = np.repeat(np.arange(len(texts)), bw.counts)
        return bw
    bw = BatchWords(voc, texts)
    if voc.generation == _WORD_CACHE_GEN[0]:
        for i, k in enumerate(keys):
            _WORD_CACHE[k] = bw.tokens[bw.offsets[i] : bw.offsets[i + 1]]
    return bw


def split_words(text: str, language: str = "en") -> list[str]:
    """datatrove's ``split_into_words`` for one text, through the vocabulary (for tests and tools)."""
    voc = vocab(language)
    toks, _ = voc.words([text])
    return [voc.tokens[t] for t in toks]


def _first_failure(n: int, rules: list[tuple[np.ndarray, str]]) -> tuple[np.ndarray, list[str | None]]:
    """Keep mask and the reason of the first rule (in order) each row fails."""
    keep = np.ones(n, dtype=bool)
    reasons: list[str | None] = [None] * n
    for failed, reason in rules:
        hit = failed & keep
        if hit.any():
            for i in np.flatnonzero(hit):
                reasons[i] = reason
            keep &= ~hit
    return keep, reasons


def _div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(num, dtype=np.float64) / den


# ---------------------------------------------------------------- Gopher quality

GOPHER_STOP_WORDS = ["the", "be", "to", "of", "and", "that", "have", "with"]


def gopher_quality(
    texts: Sequence[str],
    ids: Sequence[Any] | None = None,
    *,
    min_doc_words: int | None = 50,
    max_doc_words: int | None = 100000,
    min_avg_word_length: int | None = 3,
    max_avg_word_length: int | None = 10,
    max_symbol_word_ratio: float | None = 0.1,
    max_bullet_lines_ratio: float | None = 0.9,
    max_ellipsis_lines_ratio: float | None = 0.3,
    max_non_alpha_words_ratio: float | None = 0.8,
    min_stop_words: int | None = 2,
    stop_words: list[str] | None = None,
    language: str = "en",
) -> tuple[np.ndarray, list[str | None]]:
    """datatrove's GopherQualityFilter over a batch: (keep mask, reasons)."""
    n = len(texts)
    bw = batch_words(ids, texts, language)
    voc = bw.vocab
    n_words = bw.counts
    nonsym = voc.tok_nonsym.view[bw.tokens]
    n_nonsym = bw.per_doc_sum(nonsym)
    sum_len = bw.per_doc_sum(np.where(nonsym, voc.tok_len.view[bw.tokens], 0))
    avg = _div(sum_len, n_nonsym)
    n_alpha = bw.per_doc_sum(voc.tok_alpha.view[bw.tokens])
    rules: list[tuple[np.ndarray, str]] = []
    empty = n_words == 0
    if min_doc_words:
        rules.append((n_nonsym < min_doc_words, "gopher_short_doc"))
    if max_doc_words:
        rules.append((n_nonsym > max_doc_words, "gopher_long_doc"))
    # datatrove divides by the word count below and fails on a text without words
    rules.append((empty, "empty"))
    if min_avg_word_length:
        rules.append((avg < min_avg_word_length, "gopher_below_avg_threshold"))
    if max_avg_word_length:
        rules.append((avg > max_avg_word_length, "gopher_above_avg_threshold"))
    if max_symbol_word_ratio:
        hashes = np.fromiter((t.count("#") for t in texts), dtype=np.int64, count=n)
        ellipses = np.fromiter((t.count("...") + t.count("…") for t in texts), dtype=np.int64, count=n)
        rules.append((_div(hashes, n_words) > max_symbol_word_ratio, "gopher_too_many_hashes"))
        rules.append((_div(ellipses, n_words) > max_symbol_word_ratio, "gopher_too_many_ellipsis"))
    keep, reasons = _first_failure(n, rules)
    # line rules and the rest: per document, only for rows still kept
    stop_ids = None
    if min_stop_words:
        stops = set(GOPHER_STOP_WORDS if stop_words is None else stop_words)
        stop_ids = np.array(sorted(voc.token_ids[w] for w in stops if w in voc.token_ids), dtype=np.int64)
    bullets = ("•", "-")
    ellipsis = ("...", "…")
    for i in np.flatnonzero(keep).tolist():
        text = texts[i]
        reason = None
        if max_bullet_lines_ratio or max_ellipsis_lines_ratio:
            lines = text.splitlines()
            if max_bullet_lines_ratio and sum(s.lstrip().startswith(bullets) for s in lines) / len(lines) > max_bullet_lines_ratio:
                reason = "gopher_too_many_bullets"
            elif max_ellipsis_lines_ratio and sum(s.rstrip().endswith(ellipsis) for s in lines) / len(lines) > max_ellipsis_lines_ratio:
                reason = "gopher_too_many_end_ellipsis"
        if reason is None and max_non_alpha_words_ratio and n_alpha[i] / n_words[i] < max_non_alpha_words_ratio:
            reason = "gopher_below_alpha_threshold"
        if reason is None and stop_ids is not None:
            present = np.isin(stop_ids, bw.doc_tokens(i)).sum() if len(stop_ids) else 0
            if present < min_stop_words:  # type: ignore[operator]
                reason = "gopher_enough_stop_words"
        if reason is not None:
            keep[i] = False
            reasons[i] = reason
    return keep, reasons


# ------------------------------------------------------------ Gopher repetition

_PARAGRAPHS = re.compile(r"\n{2,}")
_LINES = re.compile("\n+")


def _duplicates(items: list[str]) -> tuple[int, int]:
    """datatrove's find_duplicates: (repeated elements, their characters) -- later copies of an element."""
    unique = set(items)
    return len(items) - len(unique), sum(map(len, items)) - sum(map(len, unique))


_MIX = np.uint64(0x9E3779B97F4A7C15)
_SHIFT = np.uint64(29)


class _NGramKeys:
    """One 64-bit key per n-gram of a document's token ids, for growing n.

    key_n[i] = mix(key_{n-1}[i], token[i + n - 1]): equal token sequences give
    equal keys; different ones collide with probability ~2^-64 per pair.
    """

    def __init__(self, toks: np.ndarray) -> None:
        self.t = toks.astype(np.uint64) + np.uint64(1)
        self.n = 0
        self.key = np.zeros(len(toks), dtype=np.uint64)

    def __call__(self, n: int) -> np.ndarray:
        if n < self.n:
            self.n, self.key = 0, np.zeros(len(self.t), dtype=np.uint64)
        with np.errstate(over="ignore"):
            while self.n < n:
                m = len(self.t) - self.n
                k = self.key[:m] * _MIX + self.t[self.n :]
                self.key = k ^ (k >> _SHIFT)
                self.n += 1
        return self.key


def _top_ngram_chars(keys: np.ndarray, lens: np.ndarray, n: int) -> int:
    """datatrove's find_top_duplicate over " ".join n-grams: chars of the most common one x its count.

    Counter.most_common keeps the first seen among equally common n-grams, so ties
    go to the earliest first occurrence.
    """
    _, first, counts = np.unique(keys, return_index=True, return_counts=True)
    top = counts.max()
    start = first[counts == top].min()
    chars = int(lens[start : start + n].sum()) + n - 1
    return chars * int(top)


def _all_duplicate_chars(keys: np.ndarray, csum: np.ndarray, n: int, candidates: np.ndarray | None) -> tuple[int, np.ndarray]:
    """datatrove's find_all_duplicate: characters in n-grams seen before, skipping n words after each.

    Only positions whose n-gram occurs more than once can change the walk, so
    the loop visits those alone: such a position is reached unless a repeat
    before it skipped over it, and repeats when an earlier reached copy exists.
    ``candidates``: the positions whose (n-1)-gram occurs more than once (a
    repeated n-gram repeats its first n-1 words), None for all. Returns the
    characters and this n's repeated positions (the next n's candidates).
    """
    pos = np.arange(len(keys)) if candidates is None else candidates[candidates < len(keys)]
    sub = keys[pos]
    if len(sub) < 200:  # few candidates (the usual case after n=5): Python beats numpy's fixed costs
        sub_l = sub.tolist()
        counted = Counter(sub_l)
        pos_l = [p for p, k in zip(pos.tolist(), sub_l) if counted[k] > 1]
        multi = np.array(pos_l, dtype=np.int64)
        pairs = zip(pos_l, [k for k in sub_l if counted[k] > 1])
    else:
        _, inverse, counts = np.unique(sub, return_inverse=True, return_counts=True)
        multi = pos[counts[inverse] > 1]
        pairs = zip(multi.tolist(), keys[multi].tolist())
    if not len(multi):
        return 0, multi
    seen: set[int] = set()
    repeated, idx = 0, 0
    for p, k in pairs:
        if p < idx:
            continue
        if k in seen:
            repeated += int(csum[p + n] - csum[p])
            idx = p + n
        else:
            seen.add(k)
    return repeated, multi


def gopher_repetition(
    texts: Sequence[str],
    ids: Sequence[Any] | None = None,
    *,
    dup_line_frac: float | None = 0.3,
    dup_para_frac: float | None = 0.3,
    dup_line_char_frac: float | None = 0.2,
    dup_para_char_frac: float | None = 0.2,
    top_n_grams: Sequence[Sequence[float]] = ((2, 0.2), (3, 0.18), (4, 0.16)),
    dup_n_grams: Sequence[Sequence[float]] = ((5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10)),
    language: str = "en",
) -> tuple[np.ndarray, list[str | None]]:
    """datatrove's GopherRepetitionFilter over a batch: (keep mask, reasons)."""
    n = len(texts)
    keep = np.ones(n, dtype=bool)
    reasons: list[str | None] = [None] * n
    undecided: list[int] = []
    for i, text in enumerate(texts):
        reason = None
        if not text:
            reason = "empty"
        else:
            size = len(text)
            paragraphs = _PARAGRAPHS.split(text.strip())
            dups, chars = _duplicates(paragraphs)
            if dup_para_frac and dups / len(paragraphs) > dup_para_frac:
                reason = "dup_para_frac"
            elif dup_para_char_frac and chars / size > dup_para_char_frac:
                reason = "dup_para_char_frac"
            else:
                lines = _LINES.split(text)
                dups, chars = _duplicates(lines)
                if dup_line_frac and dups / len(lines) > dup_line_frac:
                    reason = "dup_line_frac"
                elif dup_line_char_frac and chars / size > dup_line_char_frac:
                    reason = "dup_line_char_frac"
        if reason is None:
            undecided.append(i)
        else:
            keep[i] = False
            reasons[i] = reason
    if not undecided:
        return keep, reasons
    sub_texts = [texts[i] for i in undecided]
    sub_ids = None if ids is None else [ids[i] for i in undecided]
    bw = batch_words(sub_ids, sub_texts, language)
    tok_len = bw.vocab.tok_len.view
    for j, i in enumerate(undecided):
        toks = bw.doc_tokens(j)
        lens = tok_len[toks]
        size = len(texts[i])
        keys = _NGramKeys(toks)
        reason = None
        for ng, frac in top_n_grams:
            ng = int(ng)
            if len(toks) - ng + 1 <= 0:
                continue
            if _top_ngram_chars(keys(ng), lens, ng) / size > frac:
                reason = f"top_{ng}_gram"
                break
        if reason is None:
            csum = np.concatenate(([0], np.cumsum(lens)))
            candidates, last_n = None, 0
            for ng, frac in dup_n_grams:
                ng = int(ng)
                if len(toks) - ng + 1 <= 0:
                    continue
                if ng < last_n:  # n not increasing: no subset to start from
                    candidates = None
                elif candidates is not None and not len(candidates):
                    continue  # no repeated shorter n-gram: no repeated n-gram either
                chars, candidates = _all_duplicate_chars(keys(ng), csum, ng, candidates)
                last_n = ng
                if chars / size > frac:
                    reason = f"duplicated_{ng}_n_grams"
                    break
        if reason is not None:
            keep[i] = False
            reasons[i] = reason
    return keep, reasons


# ------------------------------------------------------------- FineWeb quality


def fineweb_quality(
    texts: Sequence[str],
    ids: Sequence[Any] | None = None,
    *,
    line_punct_thr: float = 0.12,
    line_punct_exclude_zero: bool = False,
    stop_chars: Sequence[str] | None = None,
    short_line_thr: float = 0.67,
    short_line_length: int = 30,
    char_duplicates_ratio: float = 0.01,
    new_line_ratio: float = 0.3,
    language: str = "en",
) -> tuple[np.ndarray, list[str | None]]:
    """datatrove's FineWebQualityFilter over a batch: (keep mask, reasons)."""
    stops = tuple(stop_chars) if stop_chars is not None else tuple(TERMINAL_PUNCTUATION)
    single = frozenset(stops) if all(len(s) == 1 for s in stops) else None
    n = len(texts)
    keep = np.ones(n, dtype=bool)
    reasons: list[str | None] = [None] * n
    undecided: list[int] = []
    for i, text in enumerate(texts):
        lines = [line for line in text.split("\n") if line.strip() != ""]
        if not lines:
            reason: str | None = "empty"
        else:
            if single is not None:
                ends = sum(1 for line in lines if line[-1] in single)
            else:
                ends = sum(1 for line in lines if line.endswith(stops))
            ratio = ends / len(lines)
            if ratio < line_punct_thr and not (ratio == 0 and line_punct_exclude_zero):
                reason = "line_punct_ratio"
            elif sum(1 for line in lines if len(line) <= short_line_length) / len(lines) > short_line_thr:
                reason = "short_line_ratio"
            elif _duplicates(lines)[1] / (len(text) - text.count("\n")) > char_duplicates_ratio:
                reason = "char_dup_ratio"
            else:
                reason = None
        if reason is None:
            undecided.append(i)
        else:
            keep[i] = False
            reasons[i] = reason
    if undecided:
        sub_texts = [texts[i] for i in undecided]
        bw = batch_words(None if ids is None else [ids[i] for i in undecided], sub_texts, language)
        newlines = np.fromiter((t.count("\n") for t in sub_texts), dtype=np.int64, count=len(sub_texts))
        failed = _div(newlines, bw.counts) > new_line_ratio
        for j in np.flatnonzero(failed):
            keep[undecided[j]] = False
            reasons[undecided[j]] = "list_ratio"
    return keep, reasons


# ------------------------------------------------------------------ C4 quality

CITATION_REGEX = re.compile(r"\[\d*]|\[edit]|\[citation needed]")
END_PUNCTUATION = (".", "?", "!", '"', "'")
ELLIPSIS = "..."
POLICY_SUBSTRINGS = ["terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies"]
_GAPS = re.compile(r"(\s+)")


def _sentence_count(line: str, voc: WordVocab, sent_re: re.Pattern[str]) -> int:
    """Sentences spaCy's sentencizer finds in ``line`` (what datatrove's split_into_sentences counts)."""
    if not sent_re.search(line):
        return 1
    parts = _GAPS.split(line)
    # tokens first: unseen chunks grow the flag arrays
    chunk_toks = [voc.chunk_tokens(p).tolist() if k % 2 == 0 and p else () for k, p in enumerate(parts)]
    punct = voc.tok_punct.data
    sentend = voc.tok_sentend.data
    count, seen = 1, False
    for k, part in enumerate(parts):
        if k % 2:  # whitespace: spaCy makes a space token of anything but one " " after a token
            if part != " " and seen:
                count += 1
                seen = False
            continue
        for t in chunk_toks[k]:
            if sentend[t]:
                seen = True
            elif seen and not punct[t]:
                count += 1
                seen = False
    return count


def c4_quality(
    texts: Sequence[str],
    ids: Sequence[Any] | None = None,
    *,
    split_paragraph: bool = True,
    remove_citations: bool = True,
    filter_no_terminal_punct: bool = True,
    min_num_sentences: int = 5,
    min_words_per_line: int = 3,
    max_word_length: int = 1000,
    filter_lorem_ipsum: bool = True,
    filter_javascript: bool = True,
    filter_curly_bracket: bool = True,
    filter_policy: bool = True,
    language: str = "en",
) -> tuple[np.ndarray, list[str | None]]:
    """datatrove's C4QualityFilter verdict over a batch (the text is never rewritten): (keep mask, reasons)."""
    if not split_paragraph:
        raise ValueError("c4_quality: split_paragraph=false needs impl: datatrove (sentence splitting of whole documents)")
    voc = vocab(language)
    sent_re = re.compile("[" + re.escape("".join(sorted(_sentence_punct()))) + "]")
    n = len(texts)
    keep = np.ones(n, dtype=bool)
    reasons: list[str | None] = [None] * n
    for i, text in enumerate(texts):
        num_sentences = 0
        reason = None
        for line in text.splitlines():
            line = line.strip()
            words = line.split()
            if max_word_length != -1 and len(line) > max_word_length and any(len(w) > max_word_length for w in words):
                continue
            if remove_citations and "[" in line:
                line = CITATION_REGEX.sub("", line)
            if filter_no_terminal_punct and (not line.endswith(END_PUNCTUATION) or line.endswith(ELLIPSIS)):
                continue
            if len(words) < min_words_per_line:
                continue
            line_l = line.lower()
            if filter_lorem_ipsum and "lorem ipsum" in line_l:
                reason = "lorem_ipsum"
                break
            if filter_javascript and "javascript" in line_l:
                continue
            if filter_curly_bracket and "{" in line:
                reason = "curly_bracket"
                break
            if filter_policy and any(p in line_l for p in POLICY_SUBSTRINGS):
                continue
            if min_num_sentences != -1 and num_sentences < min_num_sentences:
                # only whether the count reaches the minimum matters
                num_sentences += _sentence_count(line, voc, sent_re)
        if reason is None and num_sentences < min_num_sentences:
            reason = "too_few_sentences"
        if reason is not None:
            keep[i] = False
            reasons[i] = reason
    return keep, reasons


IMPLEMENTATIONS = {
    "gopher_quality": gopher_quality,
    "gopher_repetition": gopher_repetition,
    "fineweb_quality": fineweb_quality,
    "c4_quality": c4_quality,
}
