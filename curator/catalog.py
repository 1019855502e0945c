"""DuckDB over a run's shards: one view per stage, opened read-only for users.

Views (all read Parquet in place; nothing is copied):

* ``kept``       rows that passed every step, with every step's columns;
* ``rejected``   rows set aside, with ``reject_step`` and ``reject_reason``;
* ``documents``  both, so thresholds can be re-tuned over every input row;
* ``quarantine`` rejected rows that were bad input or made a step raise;
* ``stage_<step>`` the rows that reached a map/filter step, with its columns;
* ``<table>``    Parquet tables written by fit steps (``seeds``, ...).

``RUN/curator.duckdb`` holds the same views for any DuckDB client, with
absolute paths (so it opens from any working directory) and the run
directory it was built for recorded as the comment of the ``kept`` view. A run
copied or moved elsewhere (``cp -r``, ``rsync``) is relocated when curator
next opens it (``curator sql``, ``stats``, ``report``, a resumed run): the file
is rebuilt for the new place, or, where the run is read-only, the views are
recreated as temporary views over the new place. See docs/storage.md.

Every connection curator opens over a run is sandboxed (DuckDB's own
settings, see docs/reliability.md): external access off, only the run
directory readable, configuration locked so no ``SET`` can undo it. Paths go
into SQL only through :func:`sql_string`, so a run directory named ``ru'n``
works and cannot inject SQL.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import duckdb

CATALOG_FILE = "curator.duckdb"
MANIFEST = "manifest.json"

EMPTY_REJECTED = "SELECT NULL::VARCHAR AS id, NULL::VARCHAR AS text, NULL::VARCHAR AS reject_step, NULL::VARCHAR AS reject_reason, NULL::VARCHAR AS source LIMIT 0"
EMPTY_KEPT = "SELECT NULL::VARCHAR AS id, NULL::VARCHAR AS text LIMIT 0"


def sql_string(value: str | Path) -> str:
    """A SQL string literal: single quotes doubled, never pasted raw."""
    return "'" + str(value).replace("'", "''") + "'"


def sql_identifier(name: str) -> str:
    """A quoted SQL identifier (view names come from step and file names)."""
    return '"' + name.replace('"', '""') + '"'


def sandbox(connection: duckdb.DuckDBPyConnection, run_dir: Path) -> None:
    """Confine a connection to the run directory.

    ``allowed_directories`` keeps the run's own folder readable (the views read
    its Parquet); ``enable_external_access = false`` then turns off every
    other file, ATTACH of files, extension install/load and the network
    (DuckDB only accepts the allow-list before access is turned off).
    :func:`lock` later sets ``lock_configuration`` so no ``SET`` can undo it.

    These settings belong to the database instance, which DuckDB shares
    between connections to the same file in one process: an instance that is
    already sandboxed and locked is checked, not set again.
    """
    root = str(Path(run_dir).resolve()).rstrip("/") + "/"
    locked, external, allowed = connection.execute("SELECT current_setting('lock_configuration'), current_setting('enable_external_access'), current_setting('allowed_directories')").fetchall()[0]
    if locked:
        if external or any(not str(d).startswith(root) for d in allowed):
            from curator.errors import CuratorError

            raise CuratorError(f"{run_dir}: a DuckDB connection to this run is already open without curator's sandbox; close it first")
        return
    connection.execute("SET autoinstall_known_extensions = false")
    connection.execute("SET autoload_known_extensions = false")
    connection.execute(f"SET allowed_directories = [{sql_string(root)}]")
    connection.execute("SET enable_external_access = false")


def lock(connection: duckdb.DuckDBPyConnection) -> None:
    """No SET from here on (after plugins' prepare_duckdb had their say)."""
    if not connection.execute("SELECT current_setting('lock_configuration')").fetchall()[0][0]:
        connection.execute("SET lock_configuration = true")


def sandboxed_connect(database: str | Path, run_dir: Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection that can read only ``run_dir`` (configuration not yet locked)."""
    connection = duckdb.connect(str(database), read_only=read_only)
    try:
        sandbox(connection, run_dir)
    except BaseException:
        connection.close()
        raise
    return connection


def read_manifest(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / MANIFEST
    if not path.exists():
        from curator.errors import CuratorError

        raise CuratorError(f"{run_dir}: not a curator run directory (no {MANIFEST})")
    return json.loads(path.read_text())


def _parquet(globs: list[str]) -> str:
    files = ", ".join(sql_string(g) for g in globs)
    return f"SELECT * FROM read_parquet([{files}], union_by_name = true)"


def _existing_globs(dirs: list[Path]) -> list[str]:
    return [str(d.resolve() / "*.parquet") for d in dirs if d.is_dir() and any(d.glob("*.parquet"))]


ROOT_COMMENT = "curator run directory: "


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
        later = ", ".join(sql_string(n) for n in map_steps[i:])
        views[f"stage_{name}"] = f"SELECT * FROM kept UNION ALL BY NAME SELECT * FROM rejected WHERE reject_step IN ({later})"
    artifacts = run_dir / "artifacts"
    if artifacts.is_dir():
        for table in sorted(artifacts.glob("*/*.parquet")):
            views.setdefault(table.stem, f"SELECT * FROM read_parquet({sql_string(table.resolve())})")
    return views


def create_views(connection: duckdb.DuckDBPyConnection, run_dir: Path, temporary: bool = False) -> None:
    kind = "TEMP VIEW" if temporary else "VIEW"
    for name, select in view_definitions(run_dir).items():
        connection.execute(f"CREATE OR REPLACE {kind} {sql_identifier(name)} AS {select}")
    if not temporary:
        # where the absolute paths point: a copy of the run elsewhere is told apart by it
        connection.execute(f"COMMENT ON VIEW kept IS {sql_string(ROOT_COMMENT + str(Path(run_dir).resolve()))}")


def built_for(database: Path) -> str | None:
    """The run directory a catalog file's views point into (None: unknown, e.g. an older curator's file)."""
    connection = duckdb.connect(str(database), read_only=True)
    try:
        row = connection.execute("SELECT comment FROM duckdb_views() WHERE view_name = 'kept' AND schema_name = 'main' AND NOT temporary").fetchone()
    finally:
        connection.close()
    comment = row[0] if row else None
    return comment[len(ROOT_COMMENT) :] if isinstance(comment, str) and comment.startswith(ROOT_COMMENT) else None


def relocated(run_dir: Path) -> bool:
    """True when ``RUN/curator.duckdb`` was built for another place (the run was copied or moved)."""
    path = Path(run_dir) / CATALOG_FILE
    try:
        return built_for(path) != str(Path(run_dir).resolve())
    except duckdb.Error:
        return True


def _prepare(connection: duckdb.DuckDBPyConnection, run_dir: Path | None) -> None:
    from curator.plugins import get_plugin_manager

    get_plugin_manager().hook.prepare_duckdb(connection=connection, run_dir=run_dir)


def connect(run_dir: Path, extra_views: dict[str, str] | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory connection with the run's views (used by fit steps).

    It may read only the run directory: a fit step's SQL (``seeds_sql``, ...)
    queries the run's views and artifacts; files given in a step's params are
    read by the step's Python code, not through this connection.
    """
    connection = sandboxed_connect(":memory:", run_dir)
    create_views(connection, run_dir)
    for name, select in (extra_views or {}).items():
        connection.execute(f"CREATE OR REPLACE VIEW {sql_identifier(name)} AS {select}")
    _prepare(connection, run_dir)
    lock(connection)
    return connection


def write_database(run_dir: Path) -> Path:
    """(Re)write ``RUN/curator.duckdb`` with the run's views."""
    path = Path(run_dir) / CATALOG_FILE
    tmp = path.with_name(f".{path.name}.tmp")
    if tmp.exists():
        tmp.unlink()
    connection = sandboxed_connect(tmp, run_dir)
    try:
        lock(connection)
        create_views(connection, run_dir)
    finally:
        connection.close()
    tmp.replace(path)
    return path


def _can_write(run_dir: Path) -> bool:
    return os.access(run_dir, os.W_OK)


def open_readonly(run_dir: Path) -> duckdb.DuckDBPyConnection:
    """The connection ``curator sql`` uses: the run's database file, read-only."""
    run_dir = Path(run_dir)
    read_manifest(run_dir)
    path = run_dir / CATALOG_FILE
    stale = not path.exists() or relocated(run_dir)
    if stale and _can_write(run_dir):
        write_database(run_dir)  # a copied or moved run: its views now point here
        stale = False
    if stale and not path.exists():
        connection = sandboxed_connect(":memory:", run_dir)
    else:
        connection = sandboxed_connect(path, run_dir, read_only=True)
    if stale:
        # a read-only copy: temporary views over this place shadow the file's
        create_views(connection, run_dir, temporary=True)
    _prepare(connection, run_dir)
    lock(connection)
    return connection
