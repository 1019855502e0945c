"""curator validate PIPELINE.yaml"""

from __future__ import annotations

import click

from curator import plugins
from curator.config import load_pipeline
from curator.runner import plan


@click.command()
@click.argument("pipeline_file", type=click.Path(exists=True, dir_okay=False))
def validate(pipeline_file: str) -> None:
    """Check a pipeline file: step names, parameters, references, dependencies."""
    registry = plugins.get_registry()
    pipeline = load_pipeline(pipeline_file, registry)
    click.echo(f"{pipeline_file}: ok, {len(pipeline.steps)} steps")
    for i, segment in enumerate(plan(pipeline, registry)):
        names = ", ".join(f"{s.name} ({s.type})" for s in segment.specs) or "(ingest only)"
        click.echo(f"  {'map pass' if segment.kind == 'pass' else 'fit':<8}  {names}")
