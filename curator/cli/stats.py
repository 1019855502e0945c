"""curator stats --run RUN_DIR"""

from __future__ import annotations

import json

import click

from curator import stats as run_stats
from curator import storage


@click.command()
@click.option("--run", "run_dir", required=True, help="Run directory, or a run in an object store (s3://bucket/run: mirrored locally first).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def stats(run_dir: str, as_json: bool) -> None:
    """Input, kept and rejected rows per step and reason (kept + rejected = input)."""
    from curator.cli.sql import _existing_run

    local = _existing_run(run_dir)
    summary = run_stats.collect(local)
    if storage.is_remote(run_dir):
        summary["run"] = run_dir
    saved = local / "stats.json"
    if saved.exists():  # checks made at the end of the run (duplicate ids across files)
        summary["duplicate_ids"] = json.loads(saved.read_text()).get("duplicate_ids")
    if as_json:
        click.echo(json.dumps(summary, indent=1, default=str))
    else:
        click.echo(run_stats.format_funnel(summary))
