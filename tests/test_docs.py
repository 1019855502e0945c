"""The docs cannot rot: step pages match the code, every SQL cookbook query runs against a real run."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest
from conftest import REPO, SHARED_DATA, curator_cli, pipeline_file

from curator import docgen

STEPS_DIR = REPO / "docs" / "steps"


def test_step_pages_match_the_step_definitions():
    problems = docgen.drift(STEPS_DIR)
    assert not problems, f"docs/steps/ is out of date with the step classes ({'; '.join(problems)}): run `{docgen.COMMAND}` and commit docs/steps/"


def test_every_builtin_step_has_a_page_and_index_entry(registry):
    index = (STEPS_DIR / "index.md").read_text()
    builtin = [name for name, entry in registry if entry.cls.__module__.startswith("curator_plugins.")]
    assert len(builtin) >= 25
    for name in builtin:
        page = (STEPS_DIR / f"{name}.md").read_text()
        assert page.startswith(docgen.HEADER) and f"# `{name}`" in page
        assert f"[`{name}`]({name}.md)" in index
        # every parameter of the step has its row
        for field in registry.get(name).Params.model_fields:
            assert f"| `{field}` |" in page, (name, field)


def test_a_page_shows_types_defaults_and_constraints():
    page = (STEPS_DIR / "percentile_threshold.md").read_text()
    assert "| `keep_top_percent` | float \\| None | – | > 0, <= 100 | threshold keeps this top share |" in page
    assert "| `ties` | one of 'include', 'exclude' | `'include'` |" in page
    assert "    column: ...  # required: str" in page
    # nested settings get rows of their own
    assert "| `llm.type` | one of 'embedded', 'openai' | `'embedded'` |" in (STEPS_DIR / "llm_seed_selector.md").read_text()


def test_terminal_text_is_escaped_for_markdown_outside_code():
    # "<kept id>" would be an HTML tag to a Markdown renderer and vanish; code spans and comparisons stay as written
    assert docgen._prose("rejects duplicate_of:<kept id>, `<name>__score`, min <= x") == "rejects duplicate_of:&lt;kept id>, `<name>__score`, min <= x"
    assert "&lt;" not in (STEPS_DIR / "percentile_threshold.md").read_text()


def test_check_names_the_drifted_page_and_the_command(tmp_path):
    pages = tmp_path / "steps"
    shutil.copytree(STEPS_DIR, pages)
    run = [sys.executable, "-m", "curator.docgen", "--output", str(pages)]
    assert subprocess.run([*run, "--check"], check=False, capture_output=True, text=True).returncode == 0
    edited = pages / "range_filter.md"
    edited.write_text(edited.read_text().replace("lowest kept value", "smallest kept value"))
    (pages / "old_step.md").write_text("a step that is gone\n")
    (pages / "noop.md").unlink()
    proc = subprocess.run([*run, "--check"], check=False, capture_output=True, text=True)
    assert proc.returncode == 1
    assert "range_filter.md differs" in proc.stderr and "noop.md missing" in proc.stderr and "old_step.md is for no step" in proc.stderr
    assert f"run `{docgen.COMMAND}`" in proc.stderr
    # regenerating repairs all three
    assert subprocess.run(run, check=False, capture_output=True, text=True).returncode == 0
    assert docgen.drift(pages) == [] and not (pages / "old_step.md").exists()


def test_generation_refuses_when_a_builtin_plugin_is_missing(monkeypatch):
    monkeypatch.setenv("CURATOR_LOAD_PLUGINS", "builtin")
    with pytest.raises(docgen.CuratorError, match=r"built-in plugins did not load.*datatrove: not loaded"):
        docgen.render_pages()


def test_docs_links_resolve():
    """Relative links in README, the user docs and the step pages point at files that exist."""
    pages = ("getting-started.md", "concepts.md", "sql-cookbook.md", "migration.md", "steps.md")
    files = [REPO / "README.md", *(REPO / "docs" / p for p in pages), *sorted(STEPS_DIR.glob("*.md"))]
    broken = []
    for path in files:
        for target, anchor in re.findall(r"\]\(([^)#\s]+)(?:#([^)\s]*))?\)", path.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            linked = path.parent / target
            if not linked.exists():
                broken.append(f"{path.relative_to(REPO)} -> {target}")
            elif anchor and linked.suffix == ".md" and anchor not in heading_anchors(linked):
                broken.append(f"{path.relative_to(REPO)} -> {target}#{anchor}")
    assert not broken, broken


def heading_anchors(path) -> set[str]:
    """The anchors GitHub gives a page's headings: lowercase, punctuation dropped, spaces to dashes."""
    headings = re.findall(r"^#+\s+(.*)$", re.sub(r"```.*?```", "", path.read_text(), flags=re.DOTALL), flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


# -- the SQL cookbook ----------------------------------------------------------------

COOKBOOK = REPO / "docs" / "sql-cookbook.md"
HUMAN = SHARED_DATA / "quality" / "dclm_human_dev.jsonl"
# the step names of pipelines/demo.yaml, on 250 human-labelled pages; 4 LLM calls (cached for the second run)
COOKBOOK_PIPELINE = """
name: cookbook
steps:
  - step: text_stats
    name: stats
  - step: sql_filter
    name: min_length
    where: stats__words >= 50
    reason: too_few_words
  - step: llm_seed_selector
    name: seeds
    sample_size: 4
    max_doc_chars: 300
    pos_top_percent: 50
    neg_bottom_percent: 50
  - step: fasttext_train
    name: train
    seeds_sql: SELECT text, label FROM corpus
    holdout_fraction: 0.2
    search: false
  - step: fasttext_quality
    name: quality
    model: ${train.model_path}
  - step: percentile_threshold
    name: top
    column: quality__score
    keep_top_percent: 50
  - step: range_filter
    name: keep_top
    column: quality__score
    min: ${top.threshold}
    reason: quality_below_threshold
"""


@pytest.fixture(scope="module")
def cookbook_runs(tmp_path_factory):
    """runs/demo and runs/strict (top 30 % instead of 50 %), as the cookbook names them."""
    pytest.importorskip("fasttext")
    root = tmp_path_factory.mktemp("cookbook")
    pipeline = pipeline_file(root, COOKBOOK_PIPELINE)
    for name, extra in (("demo", []), ("strict", ["--set", "top.keep_top_percent=30"])):
        curator_cli("run", str(pipeline), "-i", str(HUMAN), "-o", str(root / "runs" / name), "-q", "--in-process", *extra)
    return root


def sql_blocks() -> list[str]:
    return re.findall(r"```sql\n(.*?)```", COOKBOOK.read_text(), flags=re.DOTALL)


def test_every_cookbook_query_runs_and_gives_the_right_numbers(cookbook_runs):
    import numpy as np
    from click.testing import CliRunner
    from sklearn.metrics import roc_auc_score

    from curator.cli import cli

    run = cookbook_runs / "runs" / "demo"
    blocks = sql_blocks()
    assert len(blocks) == 12
    results = {}
    for query in blocks:
        if "ATTACH" in query:
            continue  # run below, in a plain DuckDB client
        out = CliRunner().invoke(cli, ["sql", query, "--run", str(run), "--format", "json"])
        assert out.exit_code == 0, f"{query}\n{out.output}"
        rows = json.loads(out.output)
        assert rows, f"no rows: {query}"
        results[query] = rows

    def result(snippet: str) -> list[dict]:
        (rows,) = [r for q, r in results.items() if snippet in q]
        return rows

    # the same figures from the shards, read with pyarrow
    import pyarrow.parquet as pq

    last_pass = json.loads((run / "manifest.json").read_text())["passes"][-1]["dir"]
    kept = [r for p in sorted((run / last_pass / "kept").glob("*.parquet")) for r in pq.read_table(p).to_pylist()]
    rejected = [r for p in sorted(run.glob("pass-*/rejected/*.parquet")) for r in pq.read_table(p).to_pylist()]
    assert len(kept) + len(rejected) == 250
    scored = [r for r in kept + rejected if r.get("quality__score") is not None]
    scores = np.array([r["quality__score"] for r in scored])

    thresholds = {float(row["threshold"]): row["would_keep"] for row in result("AS t(threshold)")}
    assert thresholds[0.5] == int((scores >= 0.5).sum()) and len(thresholds) == 4
    assert result("threshold_top_30")[0]["threshold_top_30"] == pytest.approx(np.quantile(scores, 0.7))
    cut = np.quantile(scores, 0.7)
    below = result("FROM kept\nWHERE quality__score < (SELECT quantile_cont")
    assert all(r["score"] <= round(cut, 3) for r in below) and len(below) == min(10, sum(r["quality__score"] < cut for r in kept)) > 0

    breakdown = result("pct_of_input")
    assert sum(r["n"] for r in breakdown) == len(rejected)
    assert {(r["reject_step"], r["reject_reason"]) for r in breakdown} == {(r["reject_step"], r["reject_reason"]) for r in rejected}
    assert sum(r["n"] for r in result("split_part(reject_reason")) == len(rejected)
    assert sum(r["n"] for r in result("median_words")) == 250

    samples = result("PARTITION BY reject_step, reject_reason")
    reasons = {(r["reject_step"], r["reject_reason"]) for r in rejected}
    assert {(r["reject_step"], r["reject_reason"]) for r in samples} == reasons and len(samples) <= 3 * len(reasons)
    borderline = [r["score"] for r in result("WHERE reject_step = 'keep_top'")]
    assert borderline == sorted(borderline, reverse=True) and len(borderline) == 5

    grades = result("FROM grades AS g JOIN documents")
    assert sum(r["n"] for r in grades) == 4  # the graded sample
    by_label = result("FROM documents WHERE label IS NOT NULL")
    assert sum(r["n"] for r in by_label) == 250 and {r["label"] for r in by_label} == {0, 1}
    labels = np.array([r["label"] for r in scored])
    assert result("AS roc_auc")[0]["roc_auc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-9)


def test_cookbook_compare_two_runs_in_a_plain_duckdb_client(cookbook_runs, monkeypatch):
    import duckdb

    (query,) = [q for q in sql_blocks() if "ATTACH" in q]
    monkeypatch.chdir(cookbook_runs)
    connection = duckdb.connect()
    *attach, select = [s for s in query.split(";") if s.strip()]
    for statement in attach:
        connection.execute(statement)
    rows = {(a, b): n for a, b, n in connection.execute(select).fetchall()}
    connection.close()
    assert sum(rows.values()) == 250
    # top 50 % vs top 30 %: 20 % of the 240 scored documents change side, none the other way
    assert rows[("kept", "keep_top")] == 120 - 72 and ("keep_top", "kept") not in rows
    diff = json.loads(curator_cli("diff", "runs/demo", "runs/strict", "--json", cwd=cookbook_runs).stdout)
    assert diff["kept_a_rejected_b"][0]["count"] == rows[("kept", "keep_top")]
