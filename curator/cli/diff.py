"""curator diff RUN_A RUN_B: which documents changed side between two runs, and why.

What users do after changing a threshold: the documents kept in one run and
rejected in the other (grouped by the step and reason that rejected them),
the documents rejected in both but by another step or reason, and how the
counts per step and reason moved. Documents are matched on ``id`` with DuckDB
straight over both runs' Parquet shards (the same ``kept`` / ``rejected``
views ``curator sql`` shows), so every figure can be checked with a query.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import duckdb

from curator import catalog
from curator.errors import CuratorError

#: characters of each example document shown
EXAMPLE_CHARS = 300
SIDES = ("a", "b")


def _connect(run_a: Path, run_b: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that can read both run directories and nothing else.

    The same sandbox as :func:`curator.catalog.sandbox`, with two allowed
    folders instead of one (that helper confines a connection to one run).
    """
    connection = duckdb.connect(":memory:")
    try:
        _create_views(connection, run_a, run_b)
    except BaseException:
        connection.close()
        raise
    return connection


def _create_views(connection: duckdb.DuckDBPyConnection, run_a: Path, run_b: Path) -> None:
    roots = sorted({str(Path(r).resolve()).rstrip("/") + "/" for r in (run_a, run_b)})
    connection.execute("SET autoinstall_known_extensions = false")
    connection.execute("SET autoload_known_extensions = false")
    connection.execute(f"SET allowed_directories = [{', '.join(catalog.sql_string(r) for r in roots)}]")
    connection.execute("SET enable_external_access = false")
    connection.execute("SET lock_configuration = true")
    for side, run in zip(SIDES, (run_a, run_b)):
        views = catalog.view_definitions(run)
        # one row per document: its id, where it ended, the start of its text
        connection.execute(
            f"""CREATE TEMP VIEW {side}_rows AS
                SELECT id::VARCHAR AS id, NULL::VARCHAR AS step, NULL::VARCHAR AS reason, left(text, {EXAMPLE_CHARS}) AS text FROM ({views["kept"]})
                UNION ALL
                SELECT id::VARCHAR, reject_step::VARCHAR, reject_reason::VARCHAR, left(text, {EXAMPLE_CHARS}) FROM ({views["rejected"]})"""
        )
        # an id seen twice in a run (duplicate ids in the input, set aside at read) counts once: its kept row if any
        connection.execute(
            f"""CREATE TEMP VIEW {side}_docs AS SELECT * FROM {side}_rows WHERE id IS NOT NULL
                QUALIFY row_number() OVER (PARTITION BY id ORDER BY step IS NOT NULL, step, reason) = 1"""
        )
    connection.execute(
        """CREATE TEMP VIEW pairs AS
           SELECT id, a.step AS a_step, a.reason AS a_reason, b.step AS b_step, b.reason AS b_reason, coalesce(a.text, b.text) AS text
           FROM a_docs a JOIN b_docs b USING (id)"""
    )


def _one(connection: duckdb.DuckDBPyConnection, query: str) -> tuple[Any, ...]:
    """The single row of an aggregate query."""
    row = connection.execute(query).fetchone()
    assert row is not None  # an aggregate without GROUP BY always returns one row
    return row


def _side(connection: duckdb.DuckDBPyConnection, side: str, run: Path) -> dict[str, Any]:
    manifest = catalog.read_manifest(run)
    rows, kept, ids = _one(connection, f"SELECT count(*), count(*) FILTER (WHERE step IS NULL), count(DISTINCT id) FROM {side}_rows")
    return {"run": str(run), "pipeline": manifest.get("pipeline"), "status": manifest.get("status"), "rows": rows, "kept": kept, "rejected": rows - kept, "ids": ids}


def _groups(connection: duckdb.DuckDBPyConnection, where: str, keys: list[str], limit: int) -> list[dict[str, Any]]:
    """Documents of ``pairs`` matching ``where``, counted by ``keys``, with up to ``limit`` examples per group."""
    cols = ", ".join(keys)
    counts = connection.execute(f"SELECT {cols}, count(*) AS n FROM pairs WHERE {where} GROUP BY ALL ORDER BY n DESC, {cols}").fetchall()
    examples: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    if limit > 0 and counts:
        # a fixed pseudo-random sample per group (ordered by a hash of the id), the same on every call
        for row in connection.execute(
            f"""SELECT {cols}, id, text FROM pairs WHERE {where}
                QUALIFY row_number() OVER (PARTITION BY {cols} ORDER BY hash(id), id) <= {int(limit)}
                ORDER BY {cols}, hash(id), id"""
        ).fetchall():
            examples.setdefault(tuple(row[: len(keys)]), []).append({"id": row[-2], "text": row[-1]})
    out = []
    for row in counts:
        key = tuple(row[:-1])
        out.append({**dict(zip(keys, key)), "count": row[-1], "examples": examples.get(key, [])})
    return out


def diff_runs(run_a: str | Path, run_b: str | Path, limit: int = 3) -> dict[str, Any]:
    """What changed between two runs over the same input, as a JSON-able dict (``curator diff --json``)."""
    run_a, run_b = Path(run_a), Path(run_b)
    for run in (run_a, run_b):
        catalog.read_manifest(run)  # a clear error for a folder that is not a run
    try:
        connection = _connect(run_a, run_b)
    except duckdb.Error as exc:
        raise CuratorError(f"curator diff {run_a} {run_b}: cannot read the runs' shards: {exc}") from None
    try:
        a, b = _side(connection, "a", run_a), _side(connection, "b", run_b)
        (common,) = _one(connection, "SELECT count(*) FROM pairs")
        if common == 0:
            examples = [_one(connection, f"SELECT min(id) FROM {s}_docs")[0] for s in SIDES]
            raise CuratorError(
                f"{run_a} ({a['ids']:,} ids, e.g. {examples[0]!r}) and {run_b} ({b['ids']:,} ids, e.g. {examples[1]!r}) have no document id in common: "
                "curator diff compares two runs over the same input (documents are matched on id)"
            )
        lost = _groups(connection, "a_step IS NULL AND b_step IS NOT NULL", ["b_step", "b_reason"], limit)
        gained = _groups(connection, "a_step IS NOT NULL AND b_step IS NULL", ["a_step", "a_reason"], limit)
        moved = _groups(
            connection,
            "a_step IS NOT NULL AND b_step IS NOT NULL AND (a_step, a_reason) IS DISTINCT FROM (b_step, b_reason)",
            ["a_step", "a_reason", "b_step", "b_reason"],
            limit,
        )
        counts = connection.execute(
            """WITH c AS (SELECT 'a' AS side, step, reason, count(*) AS n FROM a_rows GROUP BY ALL
                          UNION ALL SELECT 'b', step, reason, count(*) FROM b_rows GROUP BY ALL)
               SELECT step, reason, coalesce(sum(n) FILTER (WHERE side = 'a'), 0)::BIGINT AS a,
                      coalesce(sum(n) FILTER (WHERE side = 'b'), 0)::BIGINT AS b
               FROM c GROUP BY step, reason ORDER BY step IS NULL, step, reason"""
        ).fetchall()
        (only_a,) = _one(connection, "SELECT count(*) FROM a_docs ANTI JOIN b_docs USING (id)")
        (only_b,) = _one(connection, "SELECT count(*) FROM b_docs ANTI JOIN a_docs USING (id)")
    except duckdb.Error as exc:  # e.g. a shard deleted or damaged since the run
        raise CuratorError(f"curator diff {run_a} {run_b}: cannot read the runs' shards: {exc}") from None
    finally:
        connection.close()
    notes = [
        f"run {side.upper()} ({info['run']}) is not finished (status {info['status']}): it covers the shards done so far"
        for side, info in zip(SIDES, (a, b))
        if info["status"] != "done"
    ]
    return {
        "a": a,
        "b": b,
        "common": common,
        "only_a": only_a,
        "only_b": only_b,
        "kept_a_rejected_b": [{"step": g.pop("b_step"), "reason": g.pop("b_reason"), **g} for g in lost],
        "rejected_a_kept_b": [{"step": g.pop("a_step"), "reason": g.pop("a_reason"), **g} for g in gained],
        "rejected_both_differently": [
            {"a_step": g.pop("a_step"), "a_reason": g.pop("a_reason"), "b_step": g.pop("b_step"), "b_reason": g.pop("b_reason"), **g} for g in moved
        ],
        "counts": [
            {"step": step or "kept", "reason": reason, "a": na, "b": nb, "change": nb - na}
            for step, reason, na, nb in counts
        ],
        "notes": notes,
    }


def _example_lines(group: dict[str, Any]) -> list[str]:
    lines = []
    for ex in group["examples"]:
        text = " ".join((ex["text"] or "").split())
        lines.append(f"      {ex['id']}  {text[:100]}{'…' if len(text) > 100 else ''}")
    return lines


def format_diff(d: dict[str, Any]) -> str:
    """The text ``curator diff`` prints."""
    out = []
    for side in SIDES:
        s = d[side]
        out.append(f"{side.upper()}  {s['run']}  (pipeline {s['pipeline']}): {s['rows']:,} rows, {s['kept']:,} kept, {s['rejected']:,} rejected")
    out.append(f"documents in both: {d['common']:,}; only in A: {d['only_a']:,}; only in B: {d['only_b']:,}")
    out += [f"note: {n}" for n in d["notes"]]
    sections = (
        ("kept in A, rejected in B", d["kept_a_rejected_b"], lambda g: f"{g['step']}: {g['reason']}"),
        ("rejected in A, kept in B", d["rejected_a_kept_b"], lambda g: f"{g['step']}: {g['reason']}"),
        ("rejected in both, by another step or reason", d["rejected_both_differently"],
         lambda g: f"{g['a_step']}: {g['a_reason']} -> {g['b_step']}: {g['b_reason']}"),
    )
    for title, groups, label in sections:
        total = sum(g["count"] for g in groups)
        out.append("")
        out.append(f"{title}: {total:,}")
        for g in groups:
            out.append(f"  {g['count']:>8,}  {label(g)}")
            out += _example_lines(g)
    out.append("")
    out.append("rows per step and reason (all rows of each run)")
    table = [("step", "reason", "A", "B", "change")] + [
        (c["step"], c["reason"] or "", f"{c['a']:,}", f"{c['b']:,}", f"{c['change']:+,}" if c["change"] else "0") for c in d["counts"]
    ]
    widths = [max(len(r[i]) for r in table) for i in range(5)]
    for row in table:
        out.append("  " + "  ".join(v.ljust(w) if i < 2 else v.rjust(w) for i, (v, w) in enumerate(zip(row, widths))).rstrip())
    return "\n".join(out)


@click.command()
@click.argument("run_a", type=click.Path(exists=True, file_okay=False))
@click.argument("run_b", type=click.Path(exists=True, file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--limit", type=click.IntRange(min=0), default=3, show_default=True, help="Example documents shown per group (0: none).")
def diff(run_a: str, run_b: str, as_json: bool, limit: int) -> None:
    """Documents kept in one run and rejected in the other, by step and reason.

    For two runs over the same input (e.g. before and after changing a
    threshold); documents are matched on id. Example:

        curator diff runs/strict runs/loose
    """
    result = diff_runs(run_a, run_b, limit)
    if as_json:
        click.echo(json.dumps(result, indent=1, default=str, ensure_ascii=False))
    else:
        click.echo(format_diff(result))
