"""curator stats --run RUN_DIR"""

from __future__ import annotations

import json
from pathlib import Path

import click

from curator import stats as run_stats


@click.command()
@click.option("--run", "run_dir", required=True, type=click.Path(exists=True, file_okay=False), help="Run directory.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def stats(run_dir: str, as_json: bool) -> None:
    """Input, kept and rejected rows per step and reason (kept + rejected = input)."""
    summary = run_stats.collect(run_dir)
    saved = Path(run_dir) / "stats.json"
    if saved.exists():  # checks made at the end of the run (duplicate ids across files)
        summary["duplicate_ids"] = json.loads(saved.read_text()).get("duplicate_ids")
    if as_json:
        click.echo(json.dumps(summary, indent=1, default=str))
    else:
        click.echo(run_stats.format_funnel(summary))
