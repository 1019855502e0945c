"""Runs whose input and output live in an S3-compatible store: a real moto server process on 127.0.0.1."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import curator_cli, pipeline_file, write_jsonl

fsspec = pytest.importorskip("fsspec")
pytest.importorskip("s3fs")

SECRET = "s3cr3t-never-in-a-run"
PIPELINE = """
steps:
  - step: text_stats
  - step: sql_filter
    where: text_stats__words >= 100
    reason: short
"""
QUERY = "SELECT id, reject_step, reject_reason, text_stats__words FROM documents ORDER BY id"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_server():
    """moto's S3 server as its own process, spoken to over a real socket."""
    port = _free_port()
    exe = Path(sys.executable).parent / "moto_server"
    proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("moto_server did not start")
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def s3(s3_server, monkeypatch, tmp_path):
    """Credentials and endpoint in the environment (as users give them), a fresh bucket, a private staging dir."""
    env = {
        "AWS_ACCESS_KEY_ID": "curator-test",
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_ENDPOINT_URL": s3_server,
        "AWS_DEFAULT_REGION": "us-east-1",
        "CURATOR_STAGING_DIR": str(tmp_path / "staging"),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    bucket = f"b{time.time_ns()}"
    fs.mkdir(bucket)
    return fs, bucket


def _upload_inputs(fs, bucket, tmp_path, dolma_rows) -> Path:
    local = tmp_path / "inputs"
    local.mkdir()
    for i in range(3):
        pq.write_table(pa.Table.from_pylist(dolma_rows[i * 150 : i * 150 + 150]), local / f"web-{i}.parquet", row_group_size=50)
    write_jsonl(local / "web-3.jsonl", [{"text": r["text"]} for r in dolma_rows[450:600]])
    for path in sorted(local.iterdir()):
        fs.put_file(str(path), f"{bucket}/corpus/{path.name}")
    return local


def _objects(fs, prefix):
    fs.invalidate_cache()
    return {p[len(prefix) + 1 :]: info for p, info in fs.find(prefix, detail=True).items()}


def _rows(run: Path):
    con = duckdb.connect(str(run / "curator.duckdb"), read_only=True)
    try:
        return con.execute(QUERY).fetchall()
    finally:
        con.close()


def test_a_run_reads_and_writes_an_object_store_and_equals_a_local_run(s3, tmp_path, dolma_rows):
    fs, bucket = s3
    local_inputs = _upload_inputs(fs, bucket, tmp_path, dolma_rows)
    pipe = pipeline_file(tmp_path, PIPELINE)
    out = curator_cli("run", str(pipe), "-i", f"s3://{bucket}/corpus/*", "-o", f"s3://{bucket}/runs/web", "-q", "-w", "2", "--unit-rows", "100")
    assert "kept + rejected = 600 = input 600: ok" in out.stdout
    curator_cli("run", str(pipe), "-i", str(local_inputs / "*"), "-o", str(tmp_path / "local"), "-q", "--unit-rows", "100")

    stored = _objects(fs, f"{bucket}/runs/web")
    assert {"manifest.json", "stats.json", "curator.duckdb"} <= set(stored)
    assert sum(1 for k in stored if k.startswith("pass-0/_done/")) == 8  # 2 units per 150-row file
    manifest = json.loads(fs.cat(f"{bucket}/runs/web/manifest.json"))
    assert manifest["status"] == "done" and manifest["output"] == f"s3://{bucket}/runs/web"
    assert manifest["inputs"][0] == f"s3://{bucket}/corpus/web-0.parquet"
    # credentials come from the environment and are never written into the run
    assert not [k for k in stored if SECRET.encode() in fs.cat(f"{bucket}/runs/web/{k}")]

    # read back on "another machine" (an empty staging cache): stats and SQL through a local mirror
    os.environ["CURATOR_STAGING_DIR"] = str(tmp_path / "elsewhere")
    stats = json.loads(curator_cli("stats", "--run", f"s3://{bucket}/runs/web", "--json").stdout)
    assert stats["input"] == 600 and stats["balanced"] and stats["run"] == f"s3://{bucket}/runs/web"
    remote_rows = json.loads(curator_cli("sql", QUERY, "--run", f"s3://{bucket}/runs/web", "--format", "json").stdout)
    assert [tuple(r.values()) for r in remote_rows] == [tuple(r) for r in _rows(tmp_path / "local")]
    # generated ids name the file relative to the inputs' common prefix, as for local files
    assert {"web-3.jsonl:0", "web-3.jsonl:149"} <= {r["id"] for r in remote_rows}


def test_resume_from_the_store_redoes_missing_and_changed_units_only(s3, tmp_path, dolma_rows):
    fs, bucket = s3
    _upload_inputs(fs, bucket, tmp_path, dolma_rows)
    pipe = pipeline_file(tmp_path, PIPELINE)
    args = ("run", str(pipe), "-i", f"s3://{bucket}/corpus/*", "-o", f"s3://{bucket}/runs/r", "-q")
    curator_cli(*args)
    prefix = f"{bucket}/runs/r"
    before = {k: v["ETag"] for k, v in _objects(fs, prefix).items() if "/_done/" in k}
    first = json.loads(fs.cat(f"{prefix}/stats.json"))

    # a run killed before two units reached the store, resumed on a machine with no staging copy
    fs.rm([f"{prefix}/pass-0/_done/part-00001.json"])
    os.environ["CURATOR_STAGING_DIR"] = str(tmp_path / "fresh")
    # and one input changed in the store since
    fs.put_file(str(write_jsonl(tmp_path / "web-3.jsonl", [{"text": r["text"]} for r in dolma_rows[450:620]])), f"{bucket}/corpus/web-3.jsonl")
    out = curator_cli(*args)
    assert "kept + rejected = 620 = input 620: ok" in out.stdout
    after = {k: v["ETag"] for k, v in _objects(fs, prefix).items() if "/_done/" in k}
    redone = {k for k in after if before.get(k) != after[k]}
    assert redone == {"pass-0/_done/part-00001.json", "pass-0/_done/part-00003.json"}
    second = json.loads(fs.cat(f"{prefix}/stats.json"))
    assert second["kept"] > first["kept"] - 1 and second["input"] == 620
