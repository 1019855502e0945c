"""Multi-node Ray: a head node and a worker node as separate `ray start` processes.

`curator run --executor ray --address HEAD` is a driver like on a real cluster:
the work lands on both nodes (each shard's marker names its Ray node), the rows
are the local executor's, and killing the worker node mid-run loses nothing.
Each node has one CPU and its own temp dir and ports (the machine has 2 cores).
Select these tests with ``-m cluster``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import SHARED_DATA, curator_cli, pipeline_file, read_jsonl

from curator.config import load_pipeline
from curator.runner import run_pipeline

pytest.importorskip("ray")
pytestmark = [pytest.mark.ray, pytest.mark.cluster]

RAY = Path(sys.executable).parent / "ray"
# Ray 2.5x turns token authentication on for `ray start`; this cluster listens on this machine only.
ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
CHAIN = """
steps:
  - step: text_stats
  - step: gopher_repetition
  - step: gopher_quality
  - step: fineweb_quality
"""


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


class Node:
    """One Ray node: `ray start --block` in its own process group, so it can be stopped (or killed) alone."""

    def __init__(self, name: str, root: Path, head: str | None = None) -> None:
        self.name = name
        self.temp_dir = root / name
        self.log = root / f"{name}.log"
        ports = free_ports(8)
        # Every port explicit: two nodes on one machine must not meet on Ray's default ports.
        args = [
            str(RAY), "start", "--block", "--num-cpus", "1", "--resources", json.dumps({name: 1}),
            "--object-manager-port", str(ports[0]), "--node-manager-port", str(ports[1]),
            "--dashboard-agent-listen-port", str(ports[2]), "--dashboard-agent-grpc-port", str(ports[3]),
            "--runtime-env-agent-port", str(ports[4]), "--metrics-export-port", str(ports[5]),
            "--object-store-memory", str(150 * 2**20), "--temp-dir", str(self.temp_dir), "--disable-usage-stats",
        ]  # fmt: skip
        if head is None:
            self.address = f"127.0.0.1:{ports[6]}"
            args += ["--head", "--node-ip-address", "127.0.0.1", "--port", str(ports[6]), "--include-dashboard", "false", "--dashboard-port", str(ports[7])]
        else:
            self.address = head
            args += ["--address", head, "--node-ip-address", "127.0.0.1"]
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **ENV}, start_new_session=True)
        deadline = time.monotonic() + 90
        while "Ray runtime started" not in self.log.read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"ray node {name} did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.2)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """What a machine failure looks like: the node's raylet, object store and workers die at once."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def node_ids(address: str) -> dict[str, str]:
    """{node name (its custom resource): Ray node id}, from the cluster's own state (a separate driver)."""
    code = (
        "import json, ray\n"
        f"ray.init(address={address!r}, logging_level='ERROR', log_to_driver=False)\n"
        "print(json.dumps({r: n['NodeID'] for n in ray.nodes() if n['Alive'] for r in n['Resources'] if r in ('head', 'worker')}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **ENV}, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def cluster():
    # short: Ray's socket paths under it must fit AF_UNIX's 107 bytes
    root = Path(tempfile.mkdtemp(prefix="rc-"))
    head = Node("head", root)
    nodes = {"head": head}
    try:
        nodes["worker"] = Node("worker", root, head=head.address)
        yield nodes
    finally:
        for node in reversed(list(nodes.values())):
            node.stop()
        shutil.rmtree(root, ignore_errors=True)


def worker_node(cluster) -> Node:
    if not cluster["worker"].alive():
        cluster["worker"] = Node("worker", cluster["head"].temp_dir.parent, head=cluster["head"].address)
    return cluster["worker"]


def shards(folder: Path, rows: list[dict], n: int = 16) -> Path:
    folder.mkdir(parents=True)
    table = pa.Table.from_pylist([{"id": r["id"], "text": r["text"]} for r in rows])
    per = -(-table.num_rows // n)
    for i in range(n):
        pq.write_table(table.slice(i * per, per), folder / f"shard-{i:02d}.parquet")
    return folder


def documents(run: Path, column: str = "text_stats__words") -> list[tuple]:
    con = duckdb.connect(str(run / "curator.duckdb"), read_only=True)
    try:
        return con.execute(f"SELECT id, reject_step, reject_reason, round({column}, 6) FROM documents ORDER BY id").fetchall()
    finally:
        con.close()


def markers(run: Path, pass_dir: str = "pass-0") -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((run / pass_dir / "_done").glob("*.json"))]


def ray_run(pipeline: Path, inputs: Path, out: Path, address: str, check: bool = True) -> subprocess.CompletedProcess:
    return curator_cli("run", str(pipeline), "--input", str(inputs / "*.parquet"), "--output", str(out), "--executor", "ray", "--address", address, "--workers", "2", "--quiet", env=ENV, check=check)


def test_a_run_on_two_nodes_gives_the_local_rows(cluster, tmp_path, registry):
    worker_node(cluster)  # (started again if a test killed it)
    inputs = shards(tmp_path / "in", read_jsonl(SHARED_DATA / "web" / "dolma_cc_sample.jsonl.gz"))
    pipeline = pipeline_file(tmp_path, CHAIN)
    local = run_pipeline(load_pipeline(pipeline, registry), tmp_path / "local", inputs=[str(inputs)], progress=False)

    ray_run(pipeline, inputs, tmp_path / "ray", cluster["head"].address)

    assert documents(tmp_path / "ray") == documents(tmp_path / "local")
    assert 0 < local["kept"] < 697
    ids = node_ids(cluster["head"].address)
    done = markers(tmp_path / "ray")
    assert len(done) == 16
    # work landed on both nodes, and each shard says where
    assert {m["ray_node"] for m in done} == {ids["head"], ids["worker"]}


# A pass with a model step runs on an actor pool (one fastText model per actor) rather than on tasks;
# the heuristic filters in the same pass give the worker node's actor time to start and take shards.
MODEL = f"""
steps:
  - step: fasttext_train
    name: train
    positive_files: ["{SHARED_DATA}/reference/python311_docs.jsonl.gz"]
    negative_files: ["{SHARED_DATA}/web/dolma_cc_sample.jsonl.gz"]
  - step: fasttext_quality
    name: q
    model: ${{train.model_path}}
    threshold: 0.5
  - step: gopher_repetition
  - step: gopher_quality
  - step: fineweb_quality
"""


# (the model pipeline's map pass is pass-1: pass-0 reads the input before the fit step)
@pytest.mark.parametrize(("steps", "column", "pass_dir"), [(CHAIN, "text_stats__words", "pass-0"), (MODEL, "q__score", "pass-1")], ids=["tasks", "actors"])
def test_killing_the_worker_node_mid_run_loses_nothing(cluster, tmp_path, registry, steps, column, pass_dir):
    if column == "q__score":
        pytest.importorskip("fasttext")
    worker = worker_node(cluster)
    ids = node_ids(cluster["head"].address)
    rows = read_jsonl(SHARED_DATA / "web" / "weborganizer_examples.jsonl.gz", limit=3200)
    inputs = shards(tmp_path / "in", rows)
    pipeline = pipeline_file(tmp_path, steps)
    local = run_pipeline(load_pipeline(pipeline, registry), tmp_path / "local", inputs=[str(inputs)], progress=False)

    out = tmp_path / "ray"
    exe = Path(sys.executable).parent / "curator"
    args = [str(exe), "run", str(pipeline), "--input", str(inputs / "*.parquet"), "--output", str(out), "--executor", "ray", "--address", cluster["head"].address, "--workers", "2", "--quiet"]
    driver = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, **ENV})
    try:
        # kill the worker node once it has finished a shard and more are to come
        deadline = time.monotonic() + 120
        while not any(m.get("ray_node") == ids["worker"] for m in _safe_markers(out, pass_dir)):
            assert driver.poll() is None, f"the run ended before the worker node did any work:\n{driver.stdout.read()}"
            assert time.monotonic() < deadline, "the worker node did no shard in 2 minutes"
            time.sleep(0.1)
        done_before = len(_safe_markers(out, pass_dir))
        worker.kill()
        assert done_before < 16, "the run finished before the node could be killed: give it more work"
        output, _ = driver.communicate(timeout=240)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    print(f"worker node killed after {done_before}/16 shards; the run {'finished' if driver.returncode == 0 else 'stopped and was resumed'}")
    if driver.returncode != 0:
        # The run may stop when Ray gives up on the lost node: started again, it redoes only unfinished shards.
        resumed = ray_run(pipeline, inputs, out, cluster["head"].address)
        output += resumed.stdout
    done = markers(out, pass_dir)
    assert len(done) == 16 and sum(m["input"] for m in done) == 3200
    assert documents(out, column) == documents(tmp_path / "local", column)
    assert local["kept"] == sum(m["kept"] for m in done)
    # the shards the dead node had finished were kept, the rest were done on the head
    assert {m["ray_node"] for m in done} == {ids["head"], ids["worker"]}
    assert not list(out.glob("pass-*/**/.*.tmp")), "a half-written shard of the dead node was left behind"


def _safe_markers(run: Path, pass_dir: str) -> list[dict]:
    try:
        return markers(run, pass_dir)
    except (OSError, ValueError):
        return []  # a marker being renamed into place
