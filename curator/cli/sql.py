"""curator sql "SELECT ..." --run RUN_DIR"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from pathlib import Path

import click
import duckdb

from curator import catalog, storage
from curator.errors import CuratorError

#: PRAGMAs that only read (the rest change settings or the database).
READ_PRAGMAS = frozenset(
    {
        "table_info",
        "show",
        "show_tables",
        "show_tables_expanded",
        "show_databases",
        "database_list",
        "database_size",
        "storage_info",
        "metadata_info",
        "version",
        "platform",
        "functions",
        "collations",
        "user_agent",
    }
)
_PRAGMA_NAME = re.compile(r"^\s*PRAGMA\s+([A-Za-z_][A-Za-z0-9_]*)\s*(\(|;|$)", re.IGNORECASE)
_EXPLAIN_PREFIX = re.compile(r"^\s*EXPLAIN\s+(ANALY[SZ]E\s+|\([^)]*\)\s*)?", re.IGNORECASE)


def check_read_only(query: str) -> duckdb.Statement:
    """The one statement of ``query`` if it only reads; CuratorError otherwise.

    DuckDB's parser decides what the statement is (a comment or a string
    cannot hide a second statement); SELECT (with DESCRIBE, SHOW, SUMMARIZE,
    FROM-first and VALUES), EXPLAIN of such a query, and the PRAGMAs in
    READ_PRAGMAS pass. Everything else (COPY, EXPORT, ATTACH, INSTALL, LOAD,
    SET, CREATE, INSERT, CALL, ...) is refused before it runs.
    """
    try:
        statements = duckdb.extract_statements(query)
    except duckdb.Error as exc:
        raise CuratorError(f"SQL error: {exc}") from None
    if not statements:
        raise CuratorError("no SQL statement given")
    if len(statements) > 1:
        kinds = ", ".join(_kind(s) for s in statements)
        raise CuratorError(f"curator sql runs one statement per call; got {len(statements)} ({kinds})")
    statement = statements[0]
    kind = _type(statement)
    if kind == duckdb.StatementType.SELECT:
        return statement
    if kind == duckdb.StatementType.EXPLAIN:
        inner = _EXPLAIN_PREFIX.sub("", statement.query, count=1)
        check_read_only(inner)
        return statement
    if kind == duckdb.StatementType.PRAGMA:
        match = _PRAGMA_NAME.match(statement.query)
        if match and match.group(1).lower() in READ_PRAGMAS and "=" not in statement.query:
            return statement
        raise CuratorError(f"curator sql is read-only: refused PRAGMA ({statement.query.strip()[:60]}); allowed PRAGMAs: {', '.join(sorted(READ_PRAGMAS))}")
    raise CuratorError(f"curator sql is read-only: refused {_kind(statement)} statement; only SELECT, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN and read-only PRAGMAs run")


def _type(statement: duckdb.Statement) -> duckdb.StatementType | None:
    try:
        return statement.type
    except ValueError:  # a type the Python binding has no name for (e.g. UPDATE EXTENSIONS)
        return None


def _kind(statement: duckdb.Statement) -> str:
    kind = _type(statement)
    if kind is None:
        return statement.query.split(None, 1)[0].upper() if statement.query.strip() else "unknown"
    name = str(kind).rsplit(".", 1)[-1]
    return name.replace("_STATEMENT", "").replace("_", " ")


def format_rows(columns: list[str], rows: list[tuple], fmt: str, max_width: int = 60) -> str:
    if fmt == "json":
        return json.dumps([dict(zip(columns, row)) for row in rows], indent=1, default=str, ensure_ascii=False)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(columns)
        writer.writerows(rows)
        return buffer.getvalue().rstrip("\n")

    def cell(value: object) -> str:
        text = "NULL" if value is None else str(value)
        text = text.replace("\n", "\\n")
        return text if len(text) <= max_width else text[: max_width - 1] + "…"

    cells = [[cell(v) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    line = "-+-".join("-" * w for w in widths)
    out = [" | ".join(c.ljust(w) for c, w in zip(columns, widths)), line]
    out += [" | ".join(v.ljust(w) for v, w in zip(r, widths)) for r in cells]
    out.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(out)


def _existing_run(run: str) -> Path:
    """A local run directory; a run in an object store is mirrored into the local staging cache first."""
    if storage.is_remote(run):
        return storage.local_run(run)
    if not Path(run).is_dir():
        raise CuratorError(f"{run}: no such run directory")
    return Path(run)


@click.command()
@click.argument("query")
@click.option("--run", "run_dir", required=True, help="Run directory, or a run in an object store (s3://bucket/run: mirrored locally first).")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
def sql(query: str, run_dir: str, fmt: str) -> None:
    """Run one read-only DuckDB QUERY over a run's views.

    Only SELECT-like statements run (DESCRIBE, SHOW, SUMMARIZE, EXPLAIN,
    read-only PRAGMAs); only the run directory's files can be read.

    Views: kept, rejected, documents (both), quarantine, stage_<step>,
    and tables written by fit steps (seeds, ...). Example:

        curator sql "SELECT reject_reason, count(*) FROM rejected GROUP BY 1" --run runs/demo
    """
    statement = check_read_only(query)
    connection = catalog.open_readonly(_existing_run(run_dir))
    try:
        try:
            result = connection.execute(statement.query)
        except duckdb.Error as exc:
            raise CuratorError(f"SQL error: {exc}") from None
        if result.description is None:
            return
        columns = [d[0] for d in result.description]
        rows = result.fetchall()
    finally:
        connection.close()
    sys.stdout.write(format_rows(columns, rows, fmt) + "\n")
