"""curator run PIPELINE.yaml"""

from __future__ import annotations

import errno
import faulthandler
import os
import sys

import click

from curator import plugins, storage
from curator.config import load_pipeline
from curator.errors import CuratorError
from curator.overrides import apply_overrides
from curator.runner import run_pipeline
from curator.stats import format_funnel

_OS_PROBLEMS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
    errno.ENOTDIR: "a path component is not a directory",
    errno.EISDIR: "is a directory",
    errno.ENOENT: "no such file or directory",
    errno.EIO: "input/output error",
}


def os_error_message(exc: OSError, output: str) -> str:
    """One line naming the path and what the system said, for a user to act on."""
    problem = _OS_PROBLEMS.get(exc.errno or -1) or exc.strerror
    if exc.filename is not None:
        path = str(exc.filename) + (f" -> {exc.filename2}" if exc.filename2 else "")
        return f"{path}: {problem or exc}"
    # pyarrow's IO errors (OSError) carry no filename: name the run directory
    detail = (str(exc).splitlines() or [type(exc).__name__])[0]
    return f"{output}: {problem or 'cannot write'} ({detail})"


@click.command()
@click.argument("pipeline_file", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--input", "-i", "inputs", multiple=True, metavar="GLOB", help="Input files: JSONL(.gz/.zst), Parquet, or Common Crawl WARC/WET (.warc.gz, .warc.wet.gz) (repeatable; overrides input.path)."
)
@click.option("--output", "-o", required=True, type=click.Path(file_okay=False), help="Run directory (resumed if it holds this pipeline's run).")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True)
@click.option("--address", default=None, help="Ray cluster address (e.g. auto); a local cluster is started otherwise.")
@click.option("--workers", "-w", type=int, default=1, show_default=True, help="Parallel workers (processes or Ray actors).")
@click.option("--batch-size", type=int, default=None, help="Rows per batch (overrides the pipeline).")
@click.option("--on-bad-input", type=click.Choice(["quarantine", "fail"]), default=None, help="Override the pipeline's on_bad_input.")
@click.option("--step-timeout", type=click.FloatRange(min=0, min_open=True), default=None, metavar="SECONDS", help="Seconds a step may spend on one batch (overrides the pipeline's step_timeout).")
@click.option(
    "--isolate/--in-process",
    default=True,
    show_default=True,
    help="Local executor: run steps in worker processes, so a step that crashes or hangs costs its shard, not the run; --in-process is faster to start and easier to debug.",
)
@click.option("--fail-fast", is_flag=True, help="Stop at the first row a step raises on, instead of quarantining it.")
@click.option("--overwrite", is_flag=True, help="Delete whatever --output holds (any earlier run) and start afresh.")
@click.option(
    "--fingerprint", type=click.Choice(["stat", "hash"]), default=None, help="What a finished unit's marker records of its input: size+mtime (default) or a content hash; a changed input is redone."
)
@click.option("--unit-rows", type=click.IntRange(min=1), default=None, help="Split input files into work units of about this many rows (Parquet: whole row groups).")
@click.option("--unit-mb", type=click.FloatRange(min=0, min_open=True), default=None, help="Without --unit-rows: split files into units of about this many MB as stored (default 256).")
@click.option("--row-group-rows", type=click.IntRange(min=1), default=None, help="Rows per Parquet row group in output shards (default 100000).")
@click.option("--max-shard-rows", type=click.IntRange(min=1), default=None, help="Rows per output shard; a bigger unit writes several (default 1000000).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@click.option("--set", "overrides", multiple=True, metavar="STEP.PARAM=VALUE", help="Override a step parameter (value parsed as YAML; repeatable), e.g. --set taxonomy.path=labels.yaml.")
@click.option("--report", "write_html", is_flag=True, help="Also write RUN/report.html (see `curator report`).")
def run(
    pipeline_file,
    inputs,
    output,
    executor,
    address,
    workers,
    batch_size,
    on_bad_input,
    step_timeout,
    isolate,
    fail_fast,
    overwrite,
    fingerprint,
    unit_rows,
    unit_mb,
    row_group_rows,
    max_shard_rows,
    quiet,
    write_html,
    overrides,
) -> None:
    """Run PIPELINE_FILE over the input and print the funnel.

    Every rejected row is kept in RUN/pass-*/rejected with its step and
    reason; query everything afterwards with `curator sql ... --run RUN`.
    A step that crashes its worker, calls sys.exit or overruns step_timeout
    has its shard quarantined (or stops the run with --on-bad-input fail).
    Only one run at a time may use a run directory.
    """
    if not faulthandler.is_enabled() and sys.stderr is not None and hasattr(sys.stderr, "fileno"):
        try:
            faulthandler.enable()  # a crash in this process still names the Python frame
        except (OSError, ValueError, AttributeError):
            pass
    pipeline = load_pipeline(pipeline_file, plugins.get_registry())
    if overrides:
        apply_overrides(pipeline, overrides, plugins.get_registry())
    for warning in pipeline.warnings:
        click.secho(f"warning: {warning}", fg="yellow", err=True)
    if batch_size is not None:
        pipeline.options.batch_size = batch_size
    if on_bad_input:
        pipeline.options.on_bad_input = on_bad_input
    if step_timeout:
        pipeline.options.step_timeout = step_timeout
    layout = {"fingerprint": fingerprint, "unit_rows": unit_rows, "unit_mb": unit_mb, "row_group_rows": row_group_rows, "max_shard_rows": max_shard_rows}
    for name, value in layout.items():
        if value is not None:
            setattr(pipeline.options, name, value)
    try:
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
            isolate=isolate,
        )
    except OSError as exc:
        # Disk full, read-only or unwritable output: one line, no traceback.
        raise CuratorError(os_error_message(exc, os.path.abspath(output))) from None
    click.echo(format_funnel(stats))
    if write_html:
        from curator.report import write_report

        # a run in an object store: the report is written in its local staging copy
        click.echo(f"report: {write_report(storage.staging_dir(output) if storage.is_remote(output) else output)}")
    else:
        click.echo(f"report: curator report --run {output}  (or run with --report)")
