"""curator validate PIPELINE.yaml [--input GLOB]"""

from __future__ import annotations

import click

from curator import plugins
from curator.config import load_pipeline, missing_paths
from curator.errors import ConfigError
from curator.preflight import check_steps_on_input
from curator.runner import plan


@click.command()
@click.argument("pipeline_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--input", "-i", "inputs", multiple=True, metavar="GLOB", help="Check the steps against this input's columns (default: input.path).")
def validate(pipeline_file: str, inputs: tuple[str, ...]) -> None:
    """Check a pipeline file: step names, parameters, references, dependencies, batch size,
    that its input and the files its steps read exist (paths in the file are relative to it),
    and SQL and column names against the input's columns."""
    registry = plugins.get_registry()
    pipeline = load_pipeline(pipeline_file, registry)
    for warning in pipeline.warnings:
        click.secho(f"warning: {warning}", fg="yellow", err=True)
    # files the steps read (models, reference text, labels) must exist; ${step.key} artifacts are made by the run
    errors = missing_paths(pipeline, registry)
    patterns = list(inputs) or pipeline.options.input.paths
    if patterns:
        try:
            errors += check_steps_on_input(pipeline, registry, patterns)
        except ConfigError as exc:  # e.g. an input that matches no file
            errors.append(str(exc))
    if errors:
        raise ConfigError("\n".join(errors))
    click.echo(f"{pipeline_file}: ok, {len(pipeline.steps)} steps" + ("" if patterns else " (no input given: columns not checked)"))
    for segment in plan(pipeline, registry):
        names = ", ".join(f"{s.name} ({s.type})" for s in segment.specs) or "(ingest only)"
        click.echo(f"  {'map pass' if segment.kind == 'pass' else 'fit':<8}  {names}")
