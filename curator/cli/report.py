"""curator report --run RUN_DIR [--output FILE]"""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option("--run", "run_dir", required=True, type=click.Path(exists=True, file_okay=False), help="Run directory.")
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None, help="HTML file to write (default: RUN/report.html).")
def report(run_dir: str, output: str | None) -> None:
    """Write one self-contained HTML page about a run (opens offline): the funnel, score
    histograms with thresholds, labels, fit evaluations, costs and sample documents."""
    from curator.report import write_report

    path = write_report(Path(run_dir), output)
    click.echo(f"report: {path}")
