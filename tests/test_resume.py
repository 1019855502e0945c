"""A run killed with SIGKILL and started again ends with exactly the rows of an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from conftest import REPO, curator_cli, pipeline_file

PIPELINE = """
steps:
  - step: text_stats
  - step: gopher_repetition
  - step: gopher_quality
  - step: fineweb_quality
"""


def rows(run: Path):
    con = duckdb.connect(str(run / "curator.duckdb"), read_only=True)
    return con.execute("SELECT id, reject_step, reject_reason, text_stats__words FROM documents ORDER BY id").fetchall()


def test_sigkill_then_resume_redoes_only_unfinished_shards(tmp_path, sharded_input):
    pipe = pipeline_file(tmp_path, PIPELINE)
    reference = tmp_path / "reference"
    curator_cli("run", str(pipe), "-i", str(sharded_input), "-o", str(reference), "-q", "--batch-size", "20")

    killed = tmp_path / "killed"
    exe = Path(sys.executable).parent / "curator"
    proc = subprocess.Popen(
        [str(exe), "run", str(pipe), "-i", str(sharded_input), "-o", str(killed), "-q", "--batch-size", "20"],
        cwd=REPO,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    done_dir = killed / "pass-0" / "_done"
    deadline = time.time() + 120
    # Kill in the middle of a shard: after at least 3 shards are done, while a
    # later shard's temporary output is being written.
    while time.time() < deadline:
        finished = len(list(done_dir.glob("*.json"))) if done_dir.exists() else 0
        partial = list((killed / "pass-0").glob("*/.*.tmp")) if (killed / "pass-0").exists() else []
        if finished >= 3 and partial:
            break
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished_before = {p.name: p.stat().st_mtime_ns for p in done_dir.glob("*.json")}
    assert 3 <= len(finished_before) < 8, "the kill must land mid-run"

    curator_cli("run", str(pipe), "-i", str(sharded_input), "-o", str(killed), "-q", "--batch-size", "20")
    after = {p.name: p.stat().st_mtime_ns for p in done_dir.glob("*.json")}
    assert len(after) == 8
    # finished shards were not redone
    assert all(after[name] == mtime for name, mtime in finished_before.items())
    assert not list((killed / "pass-0").glob("*/.*.tmp"))
    assert rows(killed) == rows(reference)
    ids = [r[0] for r in rows(killed)]
    assert len(ids) == len(set(ids)) == 697


# --------------------------------------------------------------------------- inputs that change


def _three_inputs(folder: Path, dolma_rows) -> list[Path]:
    from conftest import write_jsonl

    return [write_jsonl(folder / f"in-{i}.jsonl", dolma_rows[i * 20 : i * 20 + 20]) for i in range(3)]


def _markers(run: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in (run / "pass-0" / "_done").glob("*.json")}


def _run(tmp_path, folder, run, **kwargs):
    from curator.config import load_pipeline
    from curator.plugins import get_registry
    from curator.runner import run_pipeline

    pipe = load_pipeline(pipeline_file(tmp_path, "steps:\n  - step: text_stats\n", "changing.yaml"), get_registry())
    for name, value in kwargs.pop("options", {}).items():
        setattr(pipe.options, name, value)
    return run_pipeline(pipe, run, inputs=[str(folder / "*.jsonl")], progress=False, **kwargs)


def test_a_changed_input_is_redone_and_the_others_skipped(tmp_path, dolma_rows):
    files = _three_inputs(tmp_path / "in", dolma_rows)
    run = tmp_path / "run"
    assert _run(tmp_path, tmp_path / "in", run)["input"] == 60
    first = _markers(run)
    assert _run(tmp_path, tmp_path / "in", run)["input"] == 60
    assert _markers(run) == first  # nothing changed, nothing redone

    # the second file gets five more rows: that unit is redone, the others are not
    with open(files[1], "a") as fh:
        for row in dolma_rows[100:105]:
            fh.write(json.dumps(row) + "\n")
    summary = _run(tmp_path, tmp_path / "in", run)
    after = _markers(run)
    redone = {name for name in after if after[name] != first[name]}
    assert redone == {"part-00001.json"}
    assert summary["input"] == 65 and summary["balanced"]
    assert rows_of(run) == rows_of(_fresh(tmp_path, "fresh"))

    # only touched (same bytes, new mtime): size + mtime says redo
    os.utime(files[2], ns=(time.time_ns(), time.time_ns() + 10**9))
    before = _markers(run)
    _run(tmp_path, tmp_path / "in", run)
    assert {n for n, m in _markers(run).items() if m != before[n]} == {"part-00002.json"}


def test_a_content_hash_ignores_a_touch_but_not_an_edit(tmp_path, dolma_rows):
    files = _three_inputs(tmp_path / "in", dolma_rows)
    run = tmp_path / "run"
    _run(tmp_path, tmp_path / "in", run, options={"fingerprint": "hash"})
    marker = json.loads((run / "pass-0" / "_done" / "part-00000.json").read_text())
    assert set(marker["fingerprint"]) == {"size", "blake2b"}
    first = _markers(run)
    stat = files[0].stat()
    os.utime(files[0], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    _run(tmp_path, tmp_path / "in", run, options={"fingerprint": "hash"})
    assert _markers(run) == first
    # the same size, the same mtime, other bytes: only a hash sees it
    data = files[0].read_bytes()
    files[0].write_bytes(data.replace(b"the", b"THE", 1))
    os.utime(files[0], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    _run(tmp_path, tmp_path / "in", run, options={"fingerprint": "hash"})
    assert {n for n, m in _markers(run).items() if m != first[n]} == {"part-00000.json"}
    texts = [r[1] for r in rows_of(run, "SELECT id, text FROM documents ORDER BY id")]
    assert sum("THE" in t for t in texts) >= 1


def test_overwrite_always_starts_afresh(tmp_path, dolma_rows):
    _three_inputs(tmp_path / "in", dolma_rows)
    run = tmp_path / "run"
    _run(tmp_path, tmp_path / "in", run)
    first = _markers(run)
    (run / "pass-0" / "kept" / "stray.parquet").write_bytes(b"left by hand")
    _run(tmp_path, tmp_path / "in", run, overwrite=True)
    after = _markers(run)
    assert after.keys() == first.keys() and all(after[n] != first[n] for n in after)
    assert not (run / "pass-0" / "kept" / "stray.parquet").exists()


def test_a_failed_run_says_so_in_its_manifest(tmp_path, dolma_rows):
    from curator.errors import BadInputError

    folder = tmp_path / "in"
    _three_inputs(folder, dolma_rows)
    with open(folder / "in-1.jsonl", "a") as fh:
        fh.write("{not json\n")
    run = tmp_path / "run"
    with pytest.raises(BadInputError):
        _run(tmp_path, folder, run, options={"on_bad_input": "fail"})
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "failed"
    assert manifest["error"].startswith("BadInputError: ") and "in-1.jsonl:21" in manifest["error"]
    # fixed and run again: done, and the error is gone
    (folder / "in-1.jsonl").write_text("".join(json.dumps(r) + "\n" for r in dolma_rows[20:40]))
    _run(tmp_path, folder, run, options={"on_bad_input": "fail"})
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "done" and "error" not in manifest


def _fresh(tmp_path, name):
    _run(tmp_path, tmp_path / "in", tmp_path / name)
    return tmp_path / name


def rows_of(run: Path, query: str = "SELECT id, reject_step, text_stats__words FROM documents ORDER BY id"):
    con = duckdb.connect(str(run / "curator.duckdb"), read_only=True)
    try:
        return con.execute(query).fetchall()
    finally:
        con.close()
