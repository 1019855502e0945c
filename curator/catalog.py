"""DuckDB over a run's shards: one view per stage, opened read-only for users.

Views (all read Parquet in place; nothing is copied):

* ``kept``       rows that passed every step, with every step's columns;
* ``rejected``   rows set aside, with ``reject_step`` and ``reject_reason``;
* ``documents``  both, so thresholds can be re-tuned over every input row;
* ``quarantine`` rejected rows that were bad input or made a step raise;
* ``stage_<step>`` the rows that reached a map/filter step, with its columns;
* ``<table>``    Parquet tables written by fit steps (``seeds``, ...).

``RUN/curator.duckdb`` holds the same views for any DuckDB client.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb

CATALOG_FILE = "curator.duckdb"
MANIFEST = "manifest.json"

EMPTY_REJECTED = "SELECT NULL::VARCHAR AS id, NULL::VARCHAR AS text, NULL::VARCHAR AS reject_step, NULL::VARCHAR AS reject_reason, NULL::VARCHAR AS source LIMIT 0"
EMPTY_KEPT = "SELECT NULL::VARCHAR AS id, NULL::VARCHAR AS text LIMIT 0"


def read_manifest(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / MANIFEST
    if not path.exists():
        from curator.errors import CuratorError

        raise CuratorError(f"{run_dir}: not a curator run directory (no {MANIFEST})")
    return json.loads(path.read_text())


def _parquet(globs: list[str]) -> str:
    files = ", ".join(f"'{g}'" for g in globs)
    return f"SELECT * FROM read_parquet([{files}], union_by_name = true)"


def _existing_globs(dirs: list[Path]) -> list[str]:
    return [str(d.resolve() / "*.parquet") for d in dirs if d.is_dir() and any(d.glob("*.parquet"))]


def view_definitions(run_dir: Path) -> dict[str, str]:
    """name -> SELECT for every catalog view of the run."""
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    passes = manifest.get("passes", [])
    views: dict[str, str] = {}
    last_kept = [run_dir / passes[-1]["dir"] / "kept"] if passes else []
    kept_globs = _existing_globs(last_kept)
    rejected_globs = _existing_globs([run_dir / p["dir"] / "rejected" for p in passes])
    views["kept"] = _parquet(kept_globs) if kept_globs else EMPTY_KEPT
    views["rejected"] = _parquet(rejected_globs) if rejected_globs else EMPTY_REJECTED
    views["documents"] = "SELECT * FROM kept UNION ALL BY NAME SELECT * FROM rejected"
    views["quarantine"] = "SELECT * FROM rejected WHERE reject_step = 'read' OR reject_reason LIKE 'error:%'"
    map_steps = [s["name"] for s in manifest.get("steps", []) if s["kind"] != "fit"]
    for i, name in enumerate(map_steps):
        later = ", ".join(f"'{n}'" for n in map_steps[i:])
        views[f"stage_{name}"] = f"SELECT * FROM kept UNION ALL BY NAME SELECT * FROM rejected WHERE reject_step IN ({later})"
    artifacts = run_dir / "artifacts"
    if artifacts.is_dir():
        for table in sorted(artifacts.glob("*/*.parquet")):
            views.setdefault(table.stem, f"SELECT * FROM read_parquet('{table.resolve()}')")
    return views


def create_views(connection: duckdb.DuckDBPyConnection, run_dir: Path, temporary: bool = False) -> None:
    kind = "TEMP VIEW" if temporary else "VIEW"
    for name, select in view_definitions(run_dir).items():
        connection.execute(f'CREATE OR REPLACE {kind} "{name}" AS {select}')


def _prepare(connection: duckdb.DuckDBPyConnection, run_dir: Path | None) -> None:
    from curator.plugins import get_plugin_manager

    get_plugin_manager().hook.prepare_duckdb(connection=connection, run_dir=run_dir)


def connect(run_dir: Path, extra_views: dict[str, str] | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory connection with the run's views (used by fit steps)."""
    connection = duckdb.connect()
    create_views(connection, run_dir)
    for name, select in (extra_views or {}).items():
        connection.execute(f'CREATE OR REPLACE VIEW "{name}" AS {select}')
    _prepare(connection, run_dir)
    return connection


def write_database(run_dir: Path) -> Path:
    """(Re)write ``RUN/curator.duckdb`` with the run's views."""
    path = Path(run_dir) / CATALOG_FILE
    tmp = path.with_name(f".{path.name}.tmp")
    if tmp.exists():
        tmp.unlink()
    connection = duckdb.connect(str(tmp))
    try:
        create_views(connection, run_dir)
    finally:
        connection.close()
    tmp.replace(path)
    return path


def open_readonly(run_dir: Path) -> duckdb.DuckDBPyConnection:
    """The connection ``curator sql`` uses: the run's database file, read-only."""
    run_dir = Path(run_dir)
    read_manifest(run_dir)
    path = run_dir / CATALOG_FILE
    if not path.exists():
        write_database(run_dir)
    connection = duckdb.connect(str(path), read_only=True)
    _prepare(connection, run_dir)
    return connection
