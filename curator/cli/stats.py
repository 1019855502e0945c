"""curator stats --run RUN_DIR"""

from __future__ import annotations

import json

import click

from curator import stats as run_stats


@click.command()
@click.option("--run", "run_dir", required=True, type=click.Path(exists=True, file_okay=False), help="Run directory.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def stats(run_dir: str, as_json: bool) -> None:
    """Input, kept and rejected rows per step and reason (kept + rejected = input)."""
    summary = run_stats.collect(run_dir)
    if as_json:
        click.echo(json.dumps(summary, indent=1, default=str))
    else:
        click.echo(run_stats.format_funnel(summary))
