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
        # one row per row of the run: its id and where it ended. No text: the counts read three small columns,
        # texts are fetched afterwards for the few examples shown
        connection.execute(
            f"""CREATE TEMP VIEW {side}_rows AS
                SELECT id::VARCHAR AS id, NULL::VARCHAR AS step, NULL::VARCHAR AS reason FROM ({views["kept"]})
                UNION ALL
                SELECT id::VARCHAR, reject_step::VARCHAR, reject_reason::VARCHAR FROM ({views["rejected"]})"""
        )
        connection.execute(
            f"""CREATE TEMP VIEW {side}_texts AS
                SELECT id::VARCHAR AS id, text FROM ({views["kept"]}) UNION ALL SELECT id::VARCHAR, text FROM ({views["rejected"]})"""
        )
        # an id seen twice in a run (duplicate ids in the input) counts once: its kept row if any
        connection.execute(
            f"""CREATE TEMP VIEW {side}_docs AS SELECT * FROM {side}_rows WHERE id IS NOT NULL
                QUALIFY row_number() OVER (PARTITION BY id ORDER BY step IS NOT NULL, step, reason) = 1"""
        )


def _one(connection: duckdb.DuckDBPyConnection, query: str) -> tuple[Any, ...]:
    """The single row of an aggregate query."""
    row = connection.execute(query).fetchone()
    assert row is not None  # an aggregate without GROUP BY always returns one row
    return row


#: in one scan of both runs: every combination of (where A put a document, where B put it), counted
COMBINATIONS = """
    SELECT a.step, a.reason, b.step, b.reason, a.id IS NOT NULL AS in_a, b.id IS NOT NULL AS in_b, count(*) AS n
    FROM a_docs AS a FULL OUTER JOIN b_docs AS b ON a.id = b.id
    GROUP BY ALL
"""
#: rows per step and reason on each side (every row, duplicates included: what `curator stats` counts)
COUNTS = """
    WITH c AS (SELECT 'a' AS side, step, reason, count(*) AS n FROM a_rows GROUP BY ALL
               UNION ALL SELECT 'b', step, reason, count(*) FROM b_rows GROUP BY ALL)
    SELECT step, reason, coalesce(sum(n) FILTER (WHERE side = 'a'), 0)::BIGINT AS a,
           coalesce(sum(n) FILTER (WHERE side = 'b'), 0)::BIGINT AS b
    FROM c GROUP BY step, reason ORDER BY step IS NULL, step, reason
"""


def _examples(connection: duckdb.DuckDBPyConnection, limit: int) -> dict[tuple[Any, ...], list[dict[str, Any]]]:
    """Up to ``limit`` documents per (A step, A reason, B step, B reason) group that changed, with the start of their text."""
    # a fixed pseudo-random sample per group (ordered by a hash of the id), the same on every call
    picked = connection.execute(
        f"""SELECT a.step, a.reason, b.step, b.reason, a.id FROM a_docs AS a JOIN b_docs AS b ON a.id = b.id
            WHERE (a.step, a.reason) IS DISTINCT FROM (b.step, b.reason)
            QUALIFY row_number() OVER (PARTITION BY a.step, a.reason, b.step, b.reason ORDER BY hash(a.id), a.id) <= {int(limit)}
            ORDER BY hash(a.id), a.id"""
    ).fetchall()
    if not picked:
        return {}
    texts = dict(
        connection.execute(
            f"SELECT id, any_value(left(text, {EXAMPLE_CHARS})) FROM a_texts WHERE id IN (SELECT unnest(?::VARCHAR[])) GROUP BY id",
            [[row[4] for row in picked]],
        ).fetchall()
    )
    examples: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for *key, doc_id in picked:
        examples.setdefault(tuple(key), []).append({"id": doc_id, "text": texts.get(doc_id)})
    return examples


def diff_runs(run_a: str | Path, run_b: str | Path, limit: int = 3) -> dict[str, Any]:
    """What changed between two runs over the same input, as a JSON-able dict (``curator diff --json``)."""
    run_a, run_b = Path(run_a), Path(run_b)
    manifests = [catalog.read_manifest(run) for run in (run_a, run_b)]  # a clear error for a folder that is not a run
    try:
        connection = _connect(run_a, run_b)
    except duckdb.Error as exc:
        raise CuratorError(f"curator diff {run_a} {run_b}: cannot read the runs' shards: {exc}") from None
    try:
        combinations = connection.execute(COMBINATIONS).fetchall()
        counts = connection.execute(COUNTS).fetchall()
        ids = {"a": sum(r[-1] for r in combinations if r[4]), "b": sum(r[-1] for r in combinations if r[5])}
        common = sum(r[-1] for r in combinations if r[4] and r[5])
        if common == 0:
            first = [_one(connection, f"SELECT min(id) FROM {s}_docs")[0] for s in SIDES]
            raise CuratorError(
                f"{run_a} ({ids['a']:,} ids, e.g. {first[0]!r}) and {run_b} ({ids['b']:,} ids, e.g. {first[1]!r}) have no document id in common: "
                "curator diff compares two runs over the same input (documents are matched on id)"
            )
        examples = _examples(connection, limit) if limit > 0 else {}
    except duckdb.Error as exc:  # e.g. a shard deleted or damaged since the run
        raise CuratorError(f"curator diff {run_a} {run_b}: cannot read the runs' shards: {exc}") from None
    finally:
        connection.close()

    sides = {}
    for side, run, manifest in zip(SIDES, (run_a, run_b), manifests):
        rows = sum(c[2 if side == "a" else 3] for c in counts)
        kept = sum(c[2 if side == "a" else 3] for c in counts if c[0] is None)
        sides[side] = {"run": str(run), "pipeline": manifest.get("pipeline"), "status": manifest.get("status"), "rows": rows, "kept": kept, "rejected": rows - kept, "ids": ids[side]}

    def group(keys: tuple[str, ...], where: Any) -> list[dict[str, Any]]:
        """The changed documents matching ``where``, counted by ``keys`` (of a_step, a_reason, b_step, b_reason)."""
        totals: dict[tuple[Any, ...], int] = {}
        samples: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
        for a_step, a_reason, b_step, b_reason, in_a, in_b, n in combinations:
            if not (in_a and in_b and where(a_step, b_step) and (a_step, a_reason) != (b_step, b_reason)):
                continue
            full = {"a_step": a_step, "a_reason": a_reason, "b_step": b_step, "b_reason": b_reason}
            key = tuple(full[k] for k in keys)
            totals[key] = totals.get(key, 0) + n
            samples.setdefault(key, []).extend(examples.get((a_step, a_reason, b_step, b_reason), []))
        ordered = sorted(totals, key=lambda k: (-totals[k], *(str(v) for v in k)))
        return [{**dict(zip(keys, k)), "count": totals[k], "examples": samples[k][:limit]} for k in ordered]

    lost = group(("b_step", "b_reason"), lambda a, b: a is None and b is not None)
    gained = group(("a_step", "a_reason"), lambda a, b: a is not None and b is None)
    moved = group(("a_step", "a_reason", "b_step", "b_reason"), lambda a, b: a is not None and b is not None)
    notes = [f"run {side.upper()} ({info['run']}) is not finished (status {info['status']}): it covers the shards done so far" for side, info in sides.items() if info["status"] != "done"]
    return {
        "a": sides["a"],
        "b": sides["b"],
        "common": common,
        "only_a": ids["a"] - common,
        "only_b": ids["b"] - common,
        "kept_a_rejected_b": [{"step": g.pop("b_step"), "reason": g.pop("b_reason"), **g} for g in lost],
        "rejected_a_kept_b": [{"step": g.pop("a_step"), "reason": g.pop("a_reason"), **g} for g in gained],
        "rejected_both_differently": moved,
        "counts": [{"step": step or "kept", "reason": reason, "a": na, "b": nb, "change": nb - na} for step, reason, na, nb in counts],
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
        ("rejected in both, by another step or reason", d["rejected_both_differently"], lambda g: f"{g['a_step']}: {g['a_reason']} -> {g['b_step']}: {g['b_reason']}"),
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
    table = [("step", "reason", "A", "B", "change")] + [(c["step"], c["reason"] or "", f"{c['a']:,}", f"{c['b']:,}", f"{c['change']:+,}" if c["change"] else "0") for c in d["counts"]]
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
