"""One self-contained HTML page about a run: funnel, score distributions, evaluations, samples, costs.

The page reads the run only through what users have too: the catalog views
(``curator sql``), :func:`curator.stats.collect` (``curator stats``) and the fit
steps' ``artifacts/<step>/result.json``, so every number on it can be checked
with a query. Charts are plotly figures; plotly's JavaScript is inlined once,
so the file opens offline and can be mailed around.
"""

from __future__ import annotations

import html
import json
import math
import re
from pathlib import Path
from typing import Any

import duckdb

from curator import catalog
from curator.config import parse_pipeline, resolve_references
from curator.errors import CuratorError
from curator.stats import collect

#: numeric columns the report draws a histogram of (suffix after ``<step>__``)
SCORE_SUFFIXES = ("score", "ppl", "lang_score", "cluster_size", "dup_count", "confidence")
#: categorical columns the report counts
LABEL_SUFFIXES = ("label", "bucket", "lang")
#: threshold-like parameters and results drawn on a histogram of the step's ``column``
THRESHOLD_KEYS = ("min", "max", "threshold", "head_max", "middle_max")
BINS = 40
SAMPLE_CHARS = 400
SAMPLES_PER_REASON = 3
MAX_REASONS_SAMPLED = 12
KEPT_COLOR, REJECTED_COLOR = "#2a9d8f", "#e76f51"


def write_report(run_dir: str | Path, output: str | Path | None = None) -> Path:
    """Write the report (default ``RUN/report.html``) and return its path."""
    run_dir = Path(run_dir)
    path = Path(output) if output else run_dir / "report.html"
    page = build_report(run_dir)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return path


def build_report(run_dir: str | Path) -> str:
    run_dir = Path(run_dir)
    stats = collect(run_dir)
    results = {f["step"]: f["result"] for f in stats["funnel"] if f["kind"] == "fit" and isinstance(f["result"], dict)}
    connection = catalog.open_readonly(run_dir)
    try:
        page = _Page(run_dir, stats, results, connection)
        return page.render()
    finally:
        connection.close()


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return html.escape(str(value))


def _table(header: list[str], rows: list[list[Any]], classes: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c if isinstance(c, _Raw) else _fmt(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{classes}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


class _Raw(str):
    """HTML that is already escaped (a table cell holding markup)."""


def _q(name: str) -> str:
    return catalog.sql_identifier(name)


class _Page:
    def __init__(self, run_dir: Path, stats: dict[str, Any], results: dict[str, dict[str, Any]], connection: duckdb.DuckDBPyConnection) -> None:
        self.run_dir = run_dir
        self.stats = stats
        self.results = results
        self.con = connection
        self.figures = 0
        self.views = {r[0] for r in connection.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
        self.columns = {r[0]: r[1] for r in connection.execute("DESCRIBE documents").fetchall()} if "documents" in self.views else {}
        self.step_params = self._step_params()

    # -- data --------------------------------------------------------------

    def _step_params(self) -> dict[str, tuple[str, dict[str, Any]]]:
        """step name -> (type, params with ${...} resolved) from the run's own copy of its pipeline."""
        source = self.run_dir / "pipeline.yaml"
        if not source.is_file():
            return {}
        try:
            _, specs = parse_pipeline(source.read_text(encoding="utf-8"), str(source))
        except CuratorError:
            return {}
        out = {}
        for spec in specs:
            params = {}
            for key, value in spec.params.items():
                try:
                    params[key] = resolve_references(value, self.results, str(source))
                except CuratorError:
                    params[key] = None  # a reference to a step that did not run
            out[spec.name] = (spec.type, params)
        return out

    def _sql(self, query: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        return self.con.execute(query, params or []).fetchall()

    def thresholds(self, column: str) -> list[tuple[str, float]]:
        """(label, value) of every cut a step made on ``column``."""
        cuts = []
        for name, (step_type, params) in self.step_params.items():
            if params.get("column") != column and not (step_type == "perplexity_buckets" and "column" not in params and column == "perplexity__ppl"):
                continue
            values = dict(params)
            if isinstance(self.results.get(name), dict):
                values.update({k: v for k, v in self.results[name].items() if k in THRESHOLD_KEYS})
            for key in THRESHOLD_KEYS:
                value = values.get(key)
                if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                    cuts.append((f"{name}.{key}", float(value)))
        # a percentile_threshold and the range_filter using it cut at one value: one line, both names
        by_value: dict[float, list[str]] = {}
        for label, value in cuts:
            by_value.setdefault(value, []).append(label)
        return [(" = ".join(labels) + f" = {value:.4g}", value) for value, labels in by_value.items()]

    # -- page --------------------------------------------------------------

    def render(self) -> str:
        from plotly.offline import get_plotlyjs

        sections = [
            self.summary(),
            self.warnings(),
            self.funnel(),
            self.histograms(),
            self.labels(),
            self.evaluations(),
            self.costs(),
            self.samples(),
        ]
        body = "\n".join(s for s in sections if s)
        title = html.escape(f"curator report: {self.stats.get('pipeline') or ''} ({self.run_dir.name})")
        return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{CSS}</style>
<script>{get_plotlyjs()}</script>
</head><body><main>
<h1>{title}</h1>
{body}
<footer>Every number here comes from the run's catalog: <code>curator sql "..." --run {html.escape(str(self.run_dir))}</code>
reproduces it (views: {html.escape(", ".join(sorted(self.views)))}).</footer>
</main></body></html>
"""

    def figure(self, fig: Any, height: int = 320) -> str:
        self.figures += 1
        fig.update_layout(height=height, margin={"l": 50, "r": 20, "t": 40, "b": 40}, template="plotly_white", legend={"orientation": "h", "y": -0.2})
        return fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"chart-{self.figures}", config={"displaylogo": False, "responsive": True})

    def summary(self) -> str:
        s = self.stats
        pct = 100 * s["kept"] / s["input"] if s["input"] else 0.0
        check = "ok" if s["balanced"] else "MISMATCH"
        return (
            f'<section id="summary"><p class="big">{s["input"]:,} documents in → <b>{s["kept"]:,} kept</b> ({pct:.1f}%), '
            f"{s['rejected']:,} rejected. kept + rejected = input: <b>{check}</b>.</p>"
            f"<p>status {html.escape(str(s['status']))}, shards {s['shards']['done']}/{s['shards']['total']}, run <code>{html.escape(str(self.run_dir))}</code></p></section>"
        )

    def warnings(self) -> str:
        items = list(self.stats["warnings"])
        items += [f"unreadable, set aside: {u['source']}: {u['problem']}" for u in self.stats["unreadable"]]
        items += [f"step {step} raised on some rows, e.g. {msgs[0]}" for step, msgs in self.stats["errors"].items() if msgs]
        if not items:
            return ""
        lis = "".join(f"<li>{html.escape(str(w))}</li>" for w in items)
        return f'<section id="warnings"><h2>Warnings</h2><ul class="warnings">{lis}</ul></section>'

    def funnel(self) -> str:
        import plotly.graph_objects as go

        s = self.stats
        rows = []
        names, remaining = ["input"], [s["input"]]
        for f in s["funnel"]:
            if f["kind"] == "fit":
                continue
            names.append(f["step"])
            remaining.append((f["input"] or 0) - f["rejected"])
            share = 100 * f["rejected"] / s["input"] if s["input"] else 0.0
            reasons = ", ".join(f"{html.escape(k)} {v:,} ({100 * v / s['input']:.1f}%)" for k, v in f["reasons"].items()) if s["input"] else ""
            rows.append([f["step"], f["type"], f["input"], f["rejected"], f"{share:.1f}%", _Raw(reasons)])
        rows.append(["kept", "", s["kept"], None, f"{100 * s['kept'] / s['input']:.1f}% kept" if s["input"] else "", ""])
        fig = go.Figure(go.Funnel(y=names, x=remaining, textinfo="value+percent initial", marker={"color": KEPT_COLOR}))
        fig.update_layout(title="documents left after each step")
        chart = self.figure(fig, height=max(260, 38 * len(names)))
        table = _table(["step", "type", "in", "rejected", "% of input", "reasons (count, % of input)"], rows)
        return f'<section id="funnel"><h2>Funnel</h2>{chart}{table}</section>'

    def _score_columns(self) -> list[str]:
        pattern = re.compile(r"__(" + "|".join(SCORE_SUFFIXES) + r")$")
        numeric = ("DOUBLE", "FLOAT", "REAL", "INTEGER", "BIGINT", "SMALLINT", "TINYINT", "HUGEINT", "UBIGINT", "UINTEGER", "DECIMAL")
        return [c for c, t in self.columns.items() if pattern.search(c) and str(t).upper().startswith(numeric)]

    def _histogram(self, source: str, value: str, kept: str, title: str, cuts: list[tuple[str, float]], log: bool) -> str:
        import plotly.graph_objects as go

        x = f"log10({value})" if log else f"({value})::DOUBLE"
        where = f"{value} IS NOT NULL AND isfinite(({value})::DOUBLE)" + (f" AND {value} > 0" if log else "")
        # a constant column (dup_count all 1) has hi == lo: every row goes to bin 0, drawn as one bar centred on the value
        rows = self._sql(
            f"""WITH v AS (SELECT {x} AS x, {kept} AS kept FROM {source} WHERE {where}),
                   b AS (SELECT min(x) AS lo, max(x) AS hi FROM v)
                SELECT kept, CASE WHEN hi > lo THEN least(floor((x - lo) / (hi - lo) * {BINS}), {BINS - 1}) ELSE 0 END::INT AS bin,
                       count(*), any_value(lo), any_value(hi)
                FROM v, b GROUP BY ALL ORDER BY bin"""
        )
        if not rows:
            return ""
        lo, hi = rows[0][3], rows[0][4]
        constant = not hi > lo
        width = (hi - lo) / BINS if not constant else 1.0
        if constant:
            value = 10**lo if log else lo
            title += f": all {sum(r[2] for r in rows):,} values are {value:.6g}"
        fig = go.Figure()
        for flag, label, color in ((True, "kept", KEPT_COLOR), (False, "rejected", REJECTED_COLOR)):
            points = [(lo if constant else lo + (b + 0.5) * width, n) for k, b, n, _, _ in rows if bool(k) == flag]
            if points:
                fig.add_trace(go.Bar(x=[p[0] for p in points], y=[p[1] for p in points], width=width, name=f"{label} ({sum(p[1] for p in points):,})", marker={"color": color}, opacity=0.65))
        for i, (label, cut) in enumerate(sorted(cuts, key=lambda c: c[1])):
            if log and cut <= 0:
                continue
            # neighbouring cuts (head / middle) label to opposite sides so the texts do not overlap
            fig.add_vline(
                x=math.log10(cut) if log else cut, line={"dash": "dash", "color": "#222"}, annotation_text=label, annotation_position="top left" if i % 2 == 0 else "top right", annotation_font_size=10
            )
        if not log or constant:
            fig.update_xaxes(range=[lo - width, hi + width])
        fig.update_layout(title=title, barmode="overlay", bargap=0, xaxis_title=("log10 " if log else "") + title.split(" ")[0], yaxis_title="documents")
        return self.figure(fig)

    def histograms(self) -> str:
        charts = []
        for column in self._score_columns():
            log = column.endswith("__ppl")
            charts.append(self._histogram("documents", _q(column), "reject_step IS NULL", f"{column} (kept vs rejected)", self.thresholds(column), log))
        if "grades" in self.views:
            grade_columns = {r[0] for r in self._sql("DESCRIBE grades")}
            for column in ("grade", "teacher_score"):
                if column in grade_columns:
                    # the graded sample, split by what became of each document in the run
                    source = "(SELECT g.*, d.reject_step FROM grades g LEFT JOIN documents d USING (id))"
                    charts.append(self._histogram(source, _q(column), "reject_step IS NULL", f"{column} of the graded sample (kept vs rejected)", [], False))
        charts = [c for c in charts if c]
        if not charts:
            return ""
        return (
            '<section id="scores"><h2>Score distributions</h2><p>Dashed lines: the cuts steps made on the column.</p><div class="grid">'
            + "".join(f"<div>{c}</div>" for c in charts)
            + "</div></section>"
        )

    def labels(self) -> str:
        import plotly.graph_objects as go

        pattern = re.compile(r"__(" + "|".join(LABEL_SUFFIXES) + r")$")
        charts = []
        for column in [c for c in self.columns if pattern.search(c)]:
            rows = self._sql(f"SELECT {_q(column)}::VARCHAR AS v, reject_step IS NULL AS kept, count(*) FROM documents WHERE {_q(column)} IS NOT NULL GROUP BY ALL")
            totals: dict[str, int] = {}
            for v, _, n in rows:
                totals[v] = totals.get(v, 0) + n
            top = sorted(totals, key=lambda v: -totals[v])[:25]
            if not top:
                continue
            fig = go.Figure()
            for flag, label, color in ((True, "kept", KEPT_COLOR), (False, "rejected", REJECTED_COLOR)):
                counts = {v: n for v, k, n in rows if bool(k) == flag}
                fig.add_trace(go.Bar(x=top, y=[counts.get(v, 0) for v in top], name=label, marker={"color": color}))
            fig.update_layout(title=column, barmode="stack", yaxis_title="documents")
            charts.append(self.figure(fig))
        if not charts:
            return ""
        return '<section id="labels"><h2>Labels</h2><div class="grid">' + "".join(f"<div>{c}</div>" for c in charts) + "</div></section>"

    # -- evaluations ---------------------------------------------------------

    def evaluations(self) -> str:
        parts = []
        for f in self.stats["funnel"]:
            result = f["result"]
            if f["kind"] != "fit" or not isinstance(result, dict):
                continue
            render = {
                "fasttext_train": self._fasttext,
                "llm_seed_selector": self._teacher,
                "quality_student": self._student,
                "verify": self._verify,
            }.get(f["type"], self._generic)
            html_part = render(f["step"], result)
            if html_part:
                parts.append(f'<div class="fit"><h3>{html.escape(f["step"])} <span class="type">({html.escape(f["type"])})</span></h3>{html_part}</div>')
        if not parts:
            return ""
        return '<section id="evaluations"><h2>Fit steps and evaluations</h2>' + "".join(parts) + "</section>"

    @staticmethod
    def _scalars(result: dict[str, Any], skip: tuple[str, ...] = ()) -> str:
        rows = [[k, v] for k, v in result.items() if k not in skip and k != "warnings" and (v is None or isinstance(v, (int, float, str, bool))) and not str(k).endswith("_path")]
        return _table(["result", "value"], rows, "narrow") if rows else ""

    def _generic(self, step: str, result: dict[str, Any]) -> str:
        return self._scalars(result)

    def _confusion(self, confusion: dict[str, int], title: str) -> str:
        import plotly.graph_objects as go

        z = [[confusion.get("tp", 0), confusion.get("fn", 0)], [confusion.get("fp", 0), confusion.get("tn", 0)]]
        fig = go.Figure(go.Heatmap(z=z, x=["predicted positive", "predicted negative"], y=["positive", "negative"], text=z, texttemplate="%{text}", colorscale="Blues", showscale=False))
        fig.update_layout(title=title, yaxis={"autorange": "reversed"})
        return self.figure(fig, height=280)

    def _fasttext(self, step: str, result: dict[str, Any]) -> str:
        evaluation = result.get("eval") if isinstance(result.get("eval"), dict) else {}
        parts = [self._scalars(result, skip=("positive_label",))]
        if evaluation:
            metrics = [[k, evaluation.get(k)] for k in ("n", "roc_auc", "f1", "precision", "recall", "accuracy", "threshold") if k in evaluation]
            parts.append("<h4>held-out evaluation</h4>" + _table(["metric", "value"], metrics, "narrow"))
            if isinstance(evaluation.get("confusion"), dict):
                parts.append(self._confusion(evaluation["confusion"], f"{step}: confusion on the held-out seeds"))
        if isinstance(result.get("settings"), dict):
            parts.append("<h4>settings</h4>" + _table(["setting", "value"], [[k, v] for k, v in result["settings"].items()], "narrow"))
        return '<div class="row">' + "".join(f"<div>{p}</div>" for p in parts if p) + "</div>"

    def _roc(self, table: str, label: str, columns: list[str], title: str) -> str:
        """ROC curves of ``columns`` against a 0/1 ``label`` column of a catalog view."""
        import numpy as np
        import plotly.graph_objects as go
        from sklearn.metrics import roc_auc_score, roc_curve

        fig = go.Figure()
        for column in columns:
            rows = self._sql(f"SELECT {_q(label)}::DOUBLE, {_q(column)}::DOUBLE FROM {_q(table)} WHERE {_q(label)} IS NOT NULL AND isfinite({_q(column)}::DOUBLE)")
            y = np.array([r[0] for r in rows]) >= 1
            if len(rows) < 4 or y.all() or not y.any():
                continue
            scores = np.array([r[1] for r in rows])
            fpr, tpr, _ = roc_curve(y, scores)
            # the teacher's weights were fitted on these very labels: its curve is in-sample (the table's combined AUC is cross-validated)
            name = "teacher_score, in-sample" if column == "teacher_score" else column.removeprefix("signal__")
            fig.add_trace(go.Scatter(x=fpr, y=tpr, mode="lines", name=f"{name} (AUC {roc_auc_score(y, scores):.3f})", line={"width": 3 if column == "teacher_score" else 1.5}))
        if not fig.data:
            return ""
        fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance", line={"dash": "dot", "color": "#999"}))
        fig.update_layout(title=title, xaxis_title="false positive rate", yaxis_title="true positive rate")
        return self.figure(fig, height=380)

    def _teacher(self, step: str, result: dict[str, Any]) -> str:
        import plotly.graph_objects as go

        parts = [self._scalars(result, skip=("backend",))]
        calibration = result.get("calibration")
        if isinstance(calibration, dict):
            parts.append("<h4>LLM grades vs the sample's human labels</h4>" + _table(["metric", "value"], [[k, v] for k, v in calibration.items()], "narrow"))
        teacher: dict[str, Any] = result["teacher"] if isinstance(result.get("teacher"), dict) else {}
        report: dict[str, Any] | None = teacher["report"] if isinstance(teacher.get("report"), dict) else None
        if report:
            alone = report.get("alone") or {}
            adds = report.get("adds") or {}
            rows = [[name, alone.get(name), adds.get(name)] for name in alone]
            rows.append([_Raw("<b>combined (teacher, cross-validated)</b>"), report.get("combined_cv_auc"), None])
            parts.append(f"<h4>signals against {report.get('n', '?')} human labels (ROC-AUC)</h4>" + _table(["signal", "alone", "adds to the combination"], rows, "narrow"))
            names = [n for n in alone if isinstance(alone[n], (int, float))]
            if names:
                fig = go.Figure(go.Bar(x=names, y=[alone[n] for n in names], name="alone", marker={"color": "#457b9d"}))
                if isinstance(report.get("combined_cv_auc"), (int, float)):
                    fig.add_hline(y=report["combined_cv_auc"], line={"dash": "dash"}, annotation_text=f"combined {report['combined_cv_auc']:.3f}")
                fig.update_layout(title=f"{step}: each signal alone vs human labels", yaxis={"title": "ROC-AUC", "range": [0, 1]})
                parts.append(self.figure(fig))
        if "calibration" in self.views:
            columns = [c for (c,) in self._sql("SELECT column_name FROM (DESCRIBE calibration)") if c == "teacher_score" or c.startswith("signal__")]
            parts.append(self._roc("calibration", "human_label", columns, f"{step}: teacher and signals vs human labels"))
        if teacher.get("note"):
            parts.append(f"<p>{html.escape(str(teacher['note']))}</p>")
        return '<div class="row">' + "".join(f"<div>{p}</div>" for p in parts if p) + "</div>"

    def _student(self, step: str, result: dict[str, Any]) -> str:
        import plotly.graph_objects as go

        parts = [self._scalars(result)]
        weights = result.get("weights") if isinstance(result.get("weights"), dict) else {}
        if weights:
            fig = go.Figure(go.Bar(x=list(weights), y=list(weights.values()), marker={"color": "#457b9d"}))
            fig.update_layout(title=f"{step}: weights of the student's signals", yaxis_title="weight")
            parts.append(self.figure(fig))
        return '<div class="row">' + "".join(f"<div>{p}</div>" for p in parts if p) + "</div>"

    def _verify(self, step: str, result: dict[str, Any]) -> str:
        import plotly.graph_objects as go

        parts = [self._scalars(result)]
        pairs = [("reference perplexity", "reference_ppl_kept", "reference_ppl_random"), ("human 'good' share", "human_good_share_kept", "human_good_share_all")]
        for title, kept_key, other_key in pairs:
            if isinstance(result.get(kept_key), (int, float)) and isinstance(result.get(other_key), (int, float)):
                fig = go.Figure(go.Bar(x=[kept_key, other_key], y=[result[kept_key], result[other_key]], marker={"color": [KEPT_COLOR, "#999"]}))
                fig.update_layout(title=f"{step}: {title}")
                parts.append(self.figure(fig, height=260))
        return '<div class="row">' + "".join(f"<div>{p}</div>" for p in parts if p) + "</div>"

    # -- costs and samples -----------------------------------------------------

    def _fit_seconds(self, step: str) -> float | None:
        path = self.run_dir / "artifacts" / step / "result.json"
        try:
            seconds = json.loads(path.read_text()).get("seconds")
        except (OSError, ValueError):
            return None
        return float(seconds) if isinstance(seconds, (int, float)) else None

    def costs(self) -> str:
        rows = []
        per_call: float | None = None
        per_doc_map: list[tuple[str, float]] = []
        for f in self.stats["funnel"]:
            result = f["result"] if isinstance(f["result"], dict) else {}
            if f["kind"] == "fit":
                seconds = self._fit_seconds(f["step"])
                calls = result.get("llm_calls")
                graded = result.get("graded")
                call_seconds = seconds / graded if seconds and isinstance(graded, int) and graded else None
                if call_seconds and calls is not None:
                    per_call = call_seconds
                rows.append([f["step"], f["type"], "fit", seconds, None, None, calls, call_seconds])
            else:
                seconds = f["seconds"]
                docs = f["input"] or 0
                rate = docs / seconds if seconds else None
                ms = 1000 * seconds / docs if docs and seconds else None
                if ms is not None:
                    per_doc_map.append((f["step"], ms))
                rows.append([f["step"], f["type"], f["kind"], seconds, rate, ms, None, None])
        table = _table(["step", "type", "kind", "seconds", "docs/s", "ms/doc", "LLM calls", "s per graded doc"], rows)
        note = ""
        if per_call and per_doc_map:
            name, ms = max(per_doc_map, key=lambda kv: kv[1])
            hours = per_call * self.stats["input"] / 3600
            note = (
                f"<p>The LLM spent {per_call:.2f} s per graded document (grading and cheap judges; cached answers cost nothing): "
                f"grading all {self.stats['input']:,} input documents would take {hours:.2f} h. The slowest map step here, {html.escape(name)}, "
                f"costs {ms:.2f} ms per document ({1000 * per_call / ms:,.0f}× cheaper).</p>"
            )
        return f'<section id="costs"><h2>Cost per step</h2>{table}{note}<p class="small">Map-step seconds are summed over workers.</p></section>'

    def samples(self) -> str:
        blocks = []
        reasons = self._sql(
            "SELECT reject_step, reject_reason, count(*) AS n FROM rejected GROUP BY ALL ORDER BY n DESC, reject_step, reject_reason LIMIT ?",
            [MAX_REASONS_SAMPLED],
        )
        kept = self._sql(f"SELECT id, left(text, {SAMPLE_CHARS + 1}) FROM kept ORDER BY hash(id) LIMIT 5")
        if kept:
            blocks.append(self._sample_block("kept", self.stats["kept"], kept))
        for step, reason, n in reasons:
            docs = self._sql(
                f"SELECT id, left(text, {SAMPLE_CHARS + 1}) FROM rejected WHERE reject_step IS NOT DISTINCT FROM ? AND reject_reason IS NOT DISTINCT FROM ? ORDER BY hash(id) LIMIT {SAMPLES_PER_REASON}",
                [step, reason],
            )
            blocks.append(self._sample_block(f"rejected by {step}: {reason}", n, docs))
        if not blocks:
            return ""
        return '<section id="samples"><h2>Sample documents</h2>' + "".join(blocks) + "</section>"

    @staticmethod
    def _sample_block(title: str, total: int, docs: list[tuple[Any, ...]]) -> str:
        items = []
        for doc_id, text in docs:
            text = text or ""
            cut = text[:SAMPLE_CHARS] + (" …" if len(text) > SAMPLE_CHARS else "")
            items.append(f'<li><span class="id">{html.escape(str(doc_id))}</span><pre>{html.escape(cut)}</pre></li>')
        return f'<details><summary>{html.escape(title)} <span class="small">({total:,} documents)</span></summary><ul class="docs">{"".join(items)}</ul></details>'


CSS = """
body { font-family: system-ui, -apple-system, Segoe UI, sans-serif; margin: 0; color: #222; background: #fafafa; }
main { max-width: 1200px; margin: 0 auto; padding: 1rem 2rem 3rem; }
h1 { font-size: 1.5rem; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2rem; margin-top: 2rem; }
h3 .type { color: #777; font-weight: normal; font-size: .9rem; }
section { background: #fff; padding: .5rem 1rem 1rem; margin: 1rem 0; border-radius: 6px; box-shadow: 0 1px 2px #0001; }
table { border-collapse: collapse; margin: .5rem 0; font-size: .9rem; }
th, td { border-bottom: 1px solid #eee; padding: .25rem .6rem; text-align: left; vertical-align: top; }
td:nth-child(n+3) { font-variant-numeric: tabular-nums; }
table.narrow td { white-space: nowrap; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(480px, 1fr)); gap: .5rem; }
.row { display: flex; flex-wrap: wrap; gap: 1rem; align-items: flex-start; } .row > div { flex: 1 1 360px; min-width: 0; overflow-x: auto; }
.warnings li { color: #9a3412; margin: .3rem 0; }
.big { font-size: 1.15rem; } .small { color: #777; font-size: .85rem; }
pre { white-space: pre-wrap; word-break: break-word; background: #f4f4f4; padding: .5rem; margin: .2rem 0 .8rem; font-size: .8rem; max-height: 12rem; overflow: auto; }
.docs { list-style: none; padding-left: 0; } .id { font-family: monospace; color: #555; font-size: .8rem; }
details { margin: .4rem 0; } summary { cursor: pointer; font-weight: 600; }
footer { color: #777; font-size: .85rem; margin-top: 2rem; }
"""
