"""`curator diff`: two real runs over one real Parquet input that differ by a threshold."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import curator_cli, pipeline_file

from curator.cli.diff import diff_runs

PIPELINE = """
name: diff_test
steps:
  - step: text_stats
  - step: range_filter
    name: words
    column: text_stats__words
    min: 100
    reason: too_few_words
  - step: sql_filter
    name: no_curly
    where: text NOT LIKE '%{%'
    reason: has_curly
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory, dolma_rows):
    """Run A (min 100 words), run B (min 300 words, another reason for curly braces), run C (half the input of A)."""
    tmp = tmp_path_factory.mktemp("diff")
    pipeline = pipeline_file(tmp, PIPELINE)
    inputs = {}
    # main: 80 documents and one duplicate id (set aside at read as duplicate_id, in both runs)
    main = dolma_rows[:80] + [{"id": dolma_rows[5]["id"], "text": "the same id again, another text"}]
    for name, rows in {"main": main, "half": dolma_rows[40:120], "other": dolma_rows[200:220]}.items():
        inputs[name] = tmp / f"{name}.parquet"
        pq.write_table(pa.Table.from_pylist([{"id": r["id"], "text": r["text"]} for r in rows]), inputs[name])
    plans = {
        "a": ("main", []),
        "b": ("main", ["--set", "words.min=300", "--set", "no_curly.reason=curly_braces"]),
        "c": ("half", []),
        "d": ("other", []),
    }
    out = {}
    for run, (data, extra) in plans.items():
        out[run] = tmp / run
        curator_cli("run", str(pipeline), "-i", str(inputs[data]), "-o", str(out[run]), "-q", "--in-process", *extra)
    return out


def outcomes(run: Path) -> dict[str, tuple[str | None, str | None]]:
    """id -> (reject_step, reject_reason), None for kept: read from the shards with pyarrow, not DuckDB."""
    result: dict[str, tuple[str | None, str | None]] = {}
    for path in sorted(run.glob("pass-*/kept/*.parquet")):
        for doc_id in pq.read_table(path, columns=["id"]).column("id").to_pylist():
            result[doc_id] = (None, None)
    for path in sorted(run.glob("pass-*/rejected/*.parquet")):
        table = pq.read_table(path, columns=["id", "reject_step", "reject_reason"]).to_pylist()
        for row in table:
            if row["reject_step"] != "read":  # the duplicate id: the document is the row that was processed
                result[row["id"]] = (row["reject_step"], row["reject_reason"])
    return result


def diff_json(a: Path, b: Path, limit: int = 3) -> dict:
    """diff_runs in this process (the CLI's --json output is checked once, below)."""
    return json.loads(json.dumps(diff_runs(a, b, limit)))


def test_diff_groups_every_document_that_changed_side(runs):
    a, b = outcomes(runs["a"]), outcomes(runs["b"])
    assert set(a) == set(b) and len(a) == 80
    lost = Counter(b[i] for i in a if a[i][0] is None and b[i][0] is not None)
    gained = Counter(a[i] for i in a if a[i][0] is not None and b[i][0] is None)
    moved = Counter(a[i] + b[i] for i in a if None not in (a[i][0], b[i][0]) and a[i] != b[i])
    # the fixture must really differ both ways the diff reports, or this test proves nothing
    assert sum(lost.values()) > 0 and sum(moved.values()) > 0

    d = json.loads(curator_cli("diff", str(runs["a"]), str(runs["b"]), "--json", "--limit", "2").stdout)
    assert (d["common"], d["only_a"], d["only_b"]) == (80, 0, 0)
    assert {(g["step"], g["reason"]): g["count"] for g in d["kept_a_rejected_b"]} == dict(lost)
    assert {(g["step"], g["reason"]): g["count"] for g in d["rejected_a_kept_b"]} == dict(gained)
    assert {(g["a_step"], g["a_reason"], g["b_step"], g["b_reason"]): g["count"] for g in d["rejected_both_differently"]} == dict(moved)
    # examples: at most --limit per group, each really in its group, with its text
    for g in d["kept_a_rejected_b"]:
        assert 1 <= len(g["examples"]) <= 2
        for ex in g["examples"]:
            assert a[ex["id"]] == (None, None) and b[ex["id"]] == (g["step"], g["reason"]) and ex["text"]
    # counts per step and reason over all rows of each run: kept + rejected = input on both sides
    counts = {(c["step"], c["reason"]): (c["a"], c["b"], c["change"]) for c in d["counts"]}
    assert counts[("kept", None)] == (d["a"]["kept"], d["b"]["kept"], d["b"]["kept"] - d["a"]["kept"])
    assert counts[("words", "too_few_words")][:2] == (Counter(a.values())[("words", "too_few_words")], Counter(b.values())[("words", "too_few_words")])
    # counts are rows, as `curator stats` counts them: the duplicate row is there, once per run, unchanged
    assert sum(c["a"] for c in d["counts"]) == sum(c["b"] for c in d["counts"]) == 81
    read_rows = [c for c in d["counts"] if c["step"] == "read"]
    assert len(read_rows) == 1 and (read_rows[0]["a"], read_rows[0]["b"], read_rows[0]["change"]) == (1, 1, 0)
    assert (d["a"]["rows"], d["a"]["ids"]) == (81, 80)
    assert sum(c["change"] for c in d["counts"]) == 0


def test_diff_is_symmetric(runs):
    ab = diff_json(runs["a"], runs["b"], 0)
    ba = diff_json(runs["b"], runs["a"], 0)
    assert ab["kept_a_rejected_b"] == ba["rejected_a_kept_b"]
    assert ab["rejected_a_kept_b"] == ba["kept_a_rejected_b"]
    assert [g["count"] for g in ab["rejected_both_differently"]] == [g["count"] for g in ba["rejected_both_differently"]]
    assert all(g["examples"] == [] for g in ab["kept_a_rejected_b"])


def test_diff_text_output(runs):
    out = curator_cli("diff", str(runs["a"]), str(runs["b"]), "--limit", "1").stdout
    d = diff_json(runs["a"], runs["b"])
    lost = sum(g["count"] for g in d["kept_a_rejected_b"])
    assert f"kept in A, rejected in B: {lost}" in out
    assert "rejected in both, by another step or reason" in out and "no_curly: has_curly -> " in out
    example = d["kept_a_rejected_b"][0]["examples"][0]["id"]
    assert example in out
    assert "kept" in out.splitlines()[-1] and f"{d['b']['kept'] - d['a']['kept']:+}" in out.splitlines()[-1]


def test_diff_of_runs_over_overlapping_inputs(runs):
    d = diff_json(runs["a"], runs["c"])
    assert (d["common"], d["only_a"], d["only_b"]) == (40, 40, 40)
    # same pipeline, same settings: the 40 shared documents end the same way
    assert d["kept_a_rejected_b"] == d["rejected_a_kept_b"] == d["rejected_both_differently"] == []


def test_diff_without_common_ids_is_one_clear_error(runs):
    proc = curator_cli("diff", str(runs["a"]), str(runs["d"]), check=False)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"Error: {runs['a']} (80 ids, e.g. ")
    assert f"and {runs['d']} (20 ids, e.g. " in proc.stderr and "have no document id in common" in proc.stderr


def test_diff_of_a_folder_that_is_not_a_run(runs, tmp_path):
    proc = curator_cli("diff", str(runs["a"]), str(tmp_path), check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"Error: {tmp_path}: not a curator run directory (no manifest.json)"
