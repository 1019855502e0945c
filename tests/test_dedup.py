"""exact_dedup and minhash_dedup on real web text with injected copies (ground truth known)."""

from __future__ import annotations

import random
from collections import defaultdict

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import SHARED_DATA, pipeline_file, read_jsonl

from curator.config import load_pipeline
from curator.errors import ConfigError
from curator.plugins import get_registry
from curator.runner import run_pipeline
from curator_plugins.dedup import jaccard, lsh_threshold

pytest.importorskip("rensa")
pytest.importorskip("xxhash")

WEBORG = SHARED_DATA / "web" / "weborganizer_examples.jsonl.gz"


def run(tmp_path, text, rows_or_files, name="run"):
    if isinstance(rows_or_files, list) and rows_or_files and isinstance(rows_or_files[0], dict):
        path = tmp_path / f"{name}-input.parquet"
        pq.write_table(pa.Table.from_pylist(rows_or_files), path)
        inputs = [str(path)]
    else:
        inputs = [str(p) for p in rows_or_files]
    pipe = load_pipeline(pipeline_file(tmp_path, text, f"{name}.yaml"), get_registry())
    run_dir = tmp_path / name
    stats = run_pipeline(pipe, run_dir, inputs=inputs, progress=False)
    return run_dir, stats


def query(run_dir, sql):
    with duckdb.connect(str(run_dir / "curator.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchall()


# ---------------------------------------------------------------- exact


@pytest.fixture(scope="module")
def exact_input(dolma_rows):
    rng = random.Random(3)
    base = [{"id": f"d{i:04d}", "text": r["text"], "url": r["url"]} for i, r in enumerate(dolma_rows[:300])]
    rows = list(base)
    truth = {}  # injected id -> original id
    for i in range(40):
        orig = rng.choice(base)
        text = orig["text"]
        if i % 3 == 1:
            text = "  " + text.upper().replace(" ", "\n ") + "\n"  # same text after lowercase + whitespace collapse
        rows.append({"id": f"x{i:03d}", "text": text, "url": orig["url"] if i % 3 == 2 else f"http://copy/{i}"})
        truth[f"x{i:03d}"] = orig["id"]
    rng.shuffle(rows)
    return rows, truth


def normalised_groups(rows):
    groups = defaultdict(list)
    for r in rows:
        groups[" ".join(r["text"].lower().split())].append(r)
    return [g for g in groups.values() if len(g) > 1]


def test_exact_dedup_rejects_every_copy_naming_the_kept_one(tmp_path, exact_input):
    rows, truth = exact_input
    run_dir, stats = run(tmp_path, "steps:\n  - step: exact_dedup\n    name: exact\n", rows)
    rejected = dict(query(run_dir, "SELECT id, reject_reason FROM rejected WHERE reject_step = 'exact'"))
    kept = dict(query(run_dir, "SELECT id, exact__dup_count FROM kept"))
    assert len(kept) + len(rejected) == len(rows)
    groups = normalised_groups(rows)
    assert len(rejected) == sum(len(g) - 1 for g in groups)
    for group in groups:  # one kept per group: the smallest id; the others name it
        ids = sorted(r["id"] for r in group)
        assert kept[ids[0]] == len(group)
        for other in ids[1:]:
            assert rejected[other] == f"duplicate_of:{ids[0]}"
    assert set(truth) <= set(rejected) | set(kept)
    assert sum(1 for x in truth if x in rejected or kept.get(x, 1) > 1) == len(truth)
    assert sum(kept.values()) == len(rows)  # dup_count is the group size: the corpus re-weights to its size
    # the groups are a SQL view of the run, beside the stage view
    assert query(run_dir, "SELECT count(*) FROM exact_groups")[0][0] == sum(len(g) for g in groups)
    assert query(run_dir, "SELECT max(exact__dup_count) FROM stage_exact")[0][0] == max(len(g) for g in groups)


def test_exact_dedup_modes_and_keep_by(tmp_path, exact_input):
    rows, truth = exact_input
    raw_dir, _ = run(tmp_path, "steps:\n  - step: exact_dedup\n    mode: raw\n", rows, "raw")
    raw_rejected = {r[0] for r in query(raw_dir, "SELECT id FROM rejected")}
    upper = {x for i, x in enumerate(sorted(truth)) if i % 3 == 1}
    assert not raw_rejected & {x for x in upper if x < truth[x]}  # a case/space variant is not a raw duplicate ...
    assert any(x in raw_rejected for x in truth if x not in upper)  # ... an identical copy is

    url_dir, _ = run(tmp_path, "steps:\n  - step: exact_dedup\n    name: byurl\n    mode: column\n    column: url\n", rows, "url")
    by_url = defaultdict(list)
    for r in rows:
        if r["url"] is not None:
            by_url[r["url"]].append(r["id"])
    assert query(url_dir, "SELECT count(*) FROM rejected")[0][0] == sum(len(v) - 1 for v in by_url.values())

    longest_dir, _ = run(tmp_path, "steps:\n  - step: exact_dedup\n    keep_by: length(text) DESC\n", rows, "longest")
    length = {r["id"]: len(r["text"]) for r in rows}
    for doc_id, reason in query(longest_dir, "SELECT id, reject_reason FROM rejected"):
        kept_id = reason.split(":", 1)[1]
        assert length[kept_id] >= length[doc_id]
    assert any(r[0].startswith("x") for r in query(longest_dir, "SELECT id FROM kept WHERE exact_dedup__dup_count > 1"))


def test_bad_keep_by_and_column_are_clear_errors(tmp_path, exact_input):
    rows, _ = exact_input
    with pytest.raises(ConfigError, match="keep_by"):
        run(tmp_path, "steps:\n  - step: exact_dedup\n    keep_by: no_such_column DESC\n", rows[:50], "badkeep")
    with pytest.raises(ConfigError, match="column"):
        load_pipeline(pipeline_file(tmp_path, "steps:\n  - step: exact_dedup\n    mode: column\n", "nocol.yaml"), get_registry())


# ---------------------------------------------------------------- MinHash


def edit(text: str, rng: random.Random, kind: str) -> str:
    words = text.split()
    n = len(words)
    if kind == "replace":
        for i in rng.sample(range(n), max(1, n // 100)):
            words[i] = rng.choice(["lorem", "ipsum", "dolor", "amet"])
    elif kind == "delete":
        drop = set(rng.sample(range(n), max(1, n // 100)))
        words = [w for i, w in enumerate(words) if i not in drop]
    elif kind == "boilerplate":
        words += "Share this page on Facebook Twitter and Email. Copyright 2024 all rights reserved.".split()
    elif kind == "truncate":
        words = words[: int(n * 0.93)]
    return " ".join(words)


@pytest.fixture(scope="module")
def near_input():
    rng = random.Random(7)
    base = [r for r in read_jsonl(WEBORG, limit=700) if 150 <= len(r["text"].split()) <= 1500][:300]
    rows = [{"id": f"w{i:04d}", "text": r["text"]} for i, r in enumerate(base)]
    truth = {}
    for i, kind in enumerate(["replace", "delete", "boilerplate", "truncate"] * 12):
        orig = rows[rng.randrange(len(base))]
        rows.append({"id": f"n{i:03d}", "text": edit(orig["text"], rng, kind)})
        truth[f"n{i:03d}"] = orig["id"]
    return rows, truth


FUZZY = """
steps:
  - step: minhash_dedup
    name: fuzzy
"""


def test_minhash_finds_injected_near_copies(tmp_path, near_input):
    rows, truth = near_input
    run_dir, _ = run(tmp_path, FUZZY, rows)
    text = {r["id"]: r["text"] for r in rows}
    cluster = dict(query(run_dir, "SELECT id, fuzzy__cluster FROM stage_fuzzy WHERE fuzzy__cluster IS NOT NULL"))
    rejected = dict(query(run_dir, "SELECT id, reject_reason FROM rejected"))
    assert query(run_dir, "SELECT count(*) FROM documents")[0][0] == len(rows)
    # recall: every injected copy (true Jaccard >= 0.85 here) lands in its original's cluster
    found = [x for x, orig in truth.items() if x in cluster and cluster.get(orig) == cluster[x]]
    assert all(jaccard(text[x], text[o], 5) >= 0.85 for x, o in truth.items())
    assert len(found) >= 0.95 * len(truth), (len(found), len(truth))
    # precision: whatever it rejects is a real near-duplicate of the document it names
    for doc_id, reason in rejected.items():
        assert reason.startswith("near_duplicate_of:")
        kept_id = reason.split(":", 1)[1]
        assert cluster[doc_id] == cluster[kept_id]
        assert jaccard(text[doc_id], text[kept_id], 5) >= 0.5, (doc_id, kept_id)
    # one kept per cluster, the smallest id (default keep_by), sizes agree with the table
    sizes = query(run_dir, "SELECT fuzzy__cluster, count(*), min(id), max(fuzzy__cluster_size) FROM stage_fuzzy WHERE fuzzy__cluster IS NOT NULL GROUP BY 1")
    kept = {r[0] for r in query(run_dir, "SELECT id FROM kept")}
    for _cluster, n, smallest, size in sizes:
        assert n == size and smallest in kept
    assert query(run_dir, "SELECT count(*) FROM stage_fuzzy WHERE fuzzy__cluster_size > 1 AND id IN (SELECT id FROM kept)")[0][0] == len(sizes)


def test_minhash_verify_keeps_only_true_jaccard_edges(tmp_path, near_input):
    rows, _ = near_input
    yaml = FUZZY + "    verify: true\n    threshold: 0.9\n    keep_by: length(text) DESC\n"
    run_dir, _ = run(tmp_path, yaml, rows, "verify")
    assert query(run_dir, "SELECT min(jaccard) FROM fuzzy_groups_verified")[0][0] >= 0.9
    text = {r["id"]: r["text"] for r in rows}
    for doc_id, reason in query(run_dir, "SELECT id, reject_reason FROM rejected"):
        assert len(text[reason.split(":", 1)[1]]) >= len(text[doc_id])
    fewer = query(run_dir, "SELECT count(*) FROM fuzzy_groups_verified")[0][0]
    assert 0 < fewer <= query(run_dir, "SELECT count(*) FROM fuzzy_groups_edges")[0][0]


def test_components_are_transitive(tmp_path):
    """a~b in band 1, b~c in band 2: one cluster {a, b, c}, though a and c share no bucket."""
    docs = [("a", [1, 10]), ("b", [1, 20]), ("c", [2, 20]), ("d", [3, 30]), ("e", [3, 40]), ("f", [4, 50]), ("g", [5, 50]), ("h", [6, 60])]
    rows = [{"id": i, "text": f"text {i}", "bands": pa.scalar(b, pa.list_(pa.uint64())).as_py()} for i, b in docs]
    table = pa.table({"id": [r["id"] for r in rows], "text": [r["text"] for r in rows], "sig": pa.array([r["bands"] for r in rows], pa.list_(pa.uint64()))})
    path = tmp_path / "in.parquet"
    pq.write_table(table, path)
    yaml = """
steps:
  - step: minhash_clusters
    name: groups
    bands_column: sig
  - step: minhash_dedup
    name: dedup
    groups: ${groups.table}
"""
    run_dir, _ = run(tmp_path, yaml, [path])
    got = dict(query(run_dir, "SELECT id, dedup__cluster FROM stage_dedup"))
    assert got == {"a": "a", "b": "a", "c": "a", "d": "d", "e": "d", "f": "f", "g": "f", "h": None}
    assert sorted(query(run_dir, "SELECT id, reject_reason FROM rejected")) == [("b", "near_duplicate_of:a"), ("c", "near_duplicate_of:a"), ("e", "near_duplicate_of:d"), ("g", "near_duplicate_of:f")]


def test_default_bands_give_a_threshold_near_0_8():
    from curator_plugins.dedup import MinHashSignature

    p = MinHashSignature.Params()
    assert abs(lsh_threshold(p.bands, p.rows) - 0.8) < 0.01
