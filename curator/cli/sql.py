"""curator sql "SELECT ..." --run RUN_DIR"""

from __future__ import annotations

import csv
import io
import json
import sys

import click
import duckdb

from curator import catalog
from curator.errors import CuratorError


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


@click.command()
@click.argument("query")
@click.option("--run", "run_dir", required=True, type=click.Path(exists=True, file_okay=False), help="Run directory.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
def sql(query: str, run_dir: str, fmt: str) -> None:
    """Run a read-only DuckDB QUERY over a run's views.

    Views: kept, rejected, documents (both), quarantine, stage_<step>,
    and tables written by fit steps (seeds, ...). Example:

        curator sql "SELECT reject_reason, count(*) FROM rejected GROUP BY 1" --run runs/demo
    """
    connection = catalog.open_readonly(run_dir)
    try:
        result = connection.execute(query)
    except duckdb.Error as exc:
        raise CuratorError(f"SQL error: {exc}") from None
    if result.description is None:
        return
    columns = [d[0] for d in result.description]
    rows = result.fetchall()
    sys.stdout.write(format_rows(columns, rows, fmt) + "\n")
