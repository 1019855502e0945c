"""curator run PIPELINE.yaml"""

from __future__ import annotations

import click

from curator import plugins
from curator.config import load_pipeline
from curator.runner import run_pipeline
from curator.stats import format_funnel


@click.command()
@click.argument("pipeline_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--input", "-i", "inputs", multiple=True, metavar="GLOB", help="Input files: JSONL(.gz/.zst) or Parquet (repeatable; overrides input.path).")
@click.option("--output", "-o", required=True, type=click.Path(file_okay=False), help="Run directory (resumed if it holds this pipeline's run).")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True)
@click.option("--address", default=None, help="Ray cluster address (e.g. auto); a local cluster is started otherwise.")
@click.option("--workers", "-w", type=int, default=1, show_default=True, help="Parallel workers (processes or Ray actors).")
@click.option("--batch-size", type=int, default=None, help="Rows per batch (overrides the pipeline).")
@click.option("--on-bad-input", type=click.Choice(["quarantine", "fail"]), default=None, help="Override the pipeline's on_bad_input.")
@click.option("--fail-fast", is_flag=True, help="Stop at the first row a step raises on, instead of quarantining it.")
@click.option("--overwrite", is_flag=True, help="Delete a different earlier run in --output and start again.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def run(pipeline_file, inputs, output, executor, address, workers, batch_size, on_bad_input, fail_fast, overwrite, quiet) -> None:
    """Run PIPELINE_FILE over the input and print the funnel.

    Every rejected row is kept in RUN/pass-*/rejected with its step and
    reason; query everything afterwards with `curator sql ... --run RUN`.
    """
    pipeline = load_pipeline(pipeline_file, plugins.get_registry())
    if batch_size:
        pipeline.options.batch_size = batch_size
    if on_bad_input:
        pipeline.options.on_bad_input = on_bad_input
    stats = run_pipeline(
        pipeline,
        output,
        inputs=list(inputs) or None,
        executor=executor,
        workers=workers,
        address=address,
        fail_fast=fail_fast,
        progress=not quiet,
        overwrite=overwrite,
    )
    click.echo(format_funnel(stats))
