"""`curator report`: one offline HTML page per run, checked in a real headless browser."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import pytest
from conftest import SHARED_DATA, curator_cli, pipeline_file, read_jsonl, write_jsonl

pytest.importorskip("fasttext")
pytest.importorskip("plotly")

HUMAN = SHARED_DATA / "quality" / "dclm_human_dev.jsonl"
# a document that would run script if the report pasted it in unescaped
HOSTILE = "<b>bold</b><script>window.__pwned = 1</script> " + "a word in a sentence. " * 40

PIPELINE = """
name: report_test
steps:
  - step: text_stats
  - step: sql_filter
    name: min_words
    where: text_stats__words >= 30
    reason: too_few_words
  - step: sql_filter
    name: no_markup
    where: text NOT LIKE '%<script>%'
    reason: has_script
  - step: fasttext_train
    name: train
    seeds_sql: SELECT text, label FROM corpus
    holdout_fraction: 0.2
    # fixed, gentle settings: the report is under test here, not fastText's settings search
    search: false
    lr: 0.1
    epoch: 10
    dim: 32
    word_ngrams: 2
  - step: fasttext_quality
    name: quality
    model: ${train.model_path}
  - step: percentile_threshold
    name: top
    column: quality__score
    keep_top_percent: 40
  - step: range_filter
    name: keep_top
    column: quality__score
    min: ${top.threshold}
    reason: quality_below_threshold
"""


@pytest.fixture(scope="module")
def report_run(tmp_path_factory):
    """A real run (heuristics, fastText trained on 250 human-labelled pages, top 40 %) and its report."""
    tmp = tmp_path_factory.mktemp("report")
    rows = read_jsonl(HUMAN) + [{"id": "hostile", "text": HOSTILE, "label": 1}]
    data = write_jsonl(tmp / "docs.jsonl", rows)
    run = tmp / "run"
    stdout = curator_cli("run", str(pipeline_file(tmp, PIPELINE)), "-i", str(data), "-o", str(run), "-q", "--report").stdout
    return run, stdout


def test_run_writes_the_report_with_report_flag(report_run):
    run, stdout = report_run
    assert f"report: {run / 'report.html'}" in stdout
    assert (run / "report.html").stat().st_size > 1_000_000  # plotly's JS is inside


def test_report_holds_every_part_and_no_outside_resource(report_run, tmp_path):
    run, _ = report_run
    out = tmp_path / "r.html"
    stdout = curator_cli("report", "--run", str(run), "--output", str(out)).stdout
    assert stdout.strip() == f"report: {out}"
    page = out.read_text()
    for section in ('id="summary"', 'id="funnel"', 'id="scores"', 'id="evaluations"', 'id="costs"', 'id="samples"'):
        assert section in page
    # numbers the catalog gives: 251 in; the filters' reasons; the fastText evaluation
    assert "251 documents in" in page and "kept + rejected = input: <b>ok</b>" in page
    for reason in ("too_few_words", "has_script", "quality_below_threshold"):
        assert reason in page
    assert "held-out evaluation" in page and "roc_auc" in page
    assert "top.threshold = keep_top.min = " in page  # the cut drawn on the quality__score histogram
    # offline: plotly's JS inlined once, nothing loaded from elsewhere; the hostile document is text, not markup
    from plotly.offline import get_plotlyjs

    assert page.count(get_plotlyjs()) == 1
    ours = page.replace(get_plotlyjs(), "")
    assert "<script src" not in ours and "http" not in ours.replace("http://www.w3.org", "")
    assert "<script>window.__pwned" not in page and "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in page


def test_report_of_a_directory_that_is_not_a_run_is_one_line(tmp_path):
    proc = curator_cli("report", "--run", str(tmp_path), check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"Error: {tmp_path}: not a curator run directory (no manifest.json)"


CHROMIUM = os.environ.get("CURATOR_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"]

# for every plotly chart: its traces and the marks drawn for them (bars, lines, heatmap cells, funnel bars)
COUNT_MARKS = """() => [...document.querySelectorAll('.js-plotly-plot')].map(el => ({
  id: el.id,
  svg: el.querySelectorAll('.main-svg').length,
  traces: el.querySelectorAll('g.trace, g.hm').length,
  marks: el.querySelectorAll('g.point path, path.js-line, g.hm image, .funnellayer path').length,
}))"""


def test_report_renders_in_a_real_browser(report_run, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no browser: {CHROMIUM} missing (apt-get install -y chromium)")
    run, _ = report_run
    url = (run / "report.html").resolve().as_uri()
    errors: list[str] = []
    requests: list[str] = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url) if not r.url.startswith(("file:", "data:", "blob:")) else None)
            page.goto(url, wait_until="load")
            page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length > 0")
            charts = page.evaluate(COUNT_MARKS)
            assert page.evaluate("typeof window.__pwned") == "undefined"
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        finally:
            browser.close()
    assert errors == [] and requests == []
    # funnel, score histogram(s), confusion matrix at least; every one drawn
    assert len(charts) >= 3, charts
    for chart in charts:
        assert chart["svg"] > 0 and chart["traces"] > 0 and chart["marks"] > 0, chart
    assert (tmp_path / "report.png").stat().st_size > 10_000


CONSTANT_PIPELINE = """
name: constant_columns
steps:
  - step: exact_dedup
    name: dedup
  - step: sql_filter
    name: long_enough
    where: length(text) >= 500
    reason: too_short
"""


def plotly_charts(page: str) -> dict[str, tuple[list, dict]]:
    """div id -> (traces, layout) of every plotly chart in the page, read from its Plotly.newPlot call."""
    import re

    decoder = json.JSONDecoder()
    charts = {}
    for match in re.finditer(r'Plotly\.newPlot\(\s*"([^"]+)",\s*', page):
        traces, end = decoder.raw_decode(page, match.end())
        comma = re.compile(r",\s*").match(page, end)
        assert comma, f"chart {match.group(1)}: no layout after the traces"
        layout, _ = decoder.raw_decode(page, comma.end())
        charts[match.group(1)] = (traces, layout)
    return charts


def test_report_draws_a_constant_column_as_one_bar(tmp_path, dolma_rows):
    """dup_count is 1 for every document of a corpus without duplicates: the histogram shows that bar, and says so."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    # lm__ppl: an input column carried through, constant too, drawn on a log axis
    rows = [{"id": r["id"], "text": r["text"], "lm__ppl": 250.0} for r in dolma_rows[:40]]
    data = tmp_path / "docs.parquet"
    pq.write_table(pa.Table.from_pylist(rows), data)
    run = tmp_path / "run"
    curator_cli("run", str(pipeline_file(tmp_path, CONSTANT_PIPELINE)), "-i", str(data), "-o", str(run), "-q", "--in-process", "--report")
    page = (run / "report.html").read_text()
    charts = {layout["title"]["text"]: (traces, layout) for traces, layout in plotly_charts(page).values()}
    kept = curator_cli("sql", "SELECT count(*) FILTER (WHERE reject_step IS NULL), count(*) FROM documents", "--run", str(run), "--format", "csv").stdout
    n_kept, n_all = map(int, kept.splitlines()[1].split(","))
    assert 0 < n_kept < n_all == 40  # both a kept and a rejected bar
    for title, centre in (("dedup__dup_count (kept vs rejected): all 40 values are 1", 1.0), ("lm__ppl (kept vs rejected): all 40 values are 250", math.log10(250))):
        assert title in charts, sorted(charts)
        traces, layout = charts[title]
        low, high = layout["xaxis"]["range"]
        bars = [(t["name"], x, y) for t in traces for x, y in zip(t["x"], t["y"])]
        assert sorted(bars) == [(f"kept ({n_kept})", centre, n_kept), (f"rejected ({n_all - n_kept})", centre, n_all - n_kept)]
        assert low < centre < high  # the bar is inside the visible axis
