"""exact_dedup and minhash_dedup on a real local Ray cluster: the same decisions as the local executor."""

from __future__ import annotations

import random

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import pipeline_file

from curator.config import load_pipeline
from curator.runner import run_pipeline

ray = pytest.importorskip("ray")
pytest.importorskip("rensa")
pytest.importorskip("xxhash")
pytestmark = pytest.mark.ray

PIPELINE = """
steps:
  - step: exact_dedup
    name: exact
  - step: minhash_dedup
    name: fuzzy
    bands: 14
    rows: 8
"""


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    ray.init(num_cpus=3, include_dashboard=False, _temp_dir=str(tmp_path_factory.mktemp("ray")), logging_level="WARNING")
    yield
    ray.shutdown()


@pytest.fixture
def duplicated_shards(tmp_path, dolma_rows):
    """The dolma sample plus exact and near copies, shuffled into 4 shards so duplicates cross shards."""
    rng = random.Random(11)
    rows = [{"id": r["id"], "text": r["text"]} for r in dolma_rows]
    long_ones = [r for r in rows if len(r["text"].split()) >= 200]
    for i in range(60):
        orig = rng.choice(long_ones)
        words = orig["text"].split()
        if i % 2:  # a near copy: 1 % of the words replaced
            for j in rng.sample(range(len(words)), max(1, len(words) // 100)):
                words[j] = "lorem"
            text = " ".join(words)
        else:  # an exact copy, up to case and spacing
            text = orig["text"].upper() if i % 4 == 0 else orig["text"]
        rows.append({"id": f"copy-{i:03d}", "text": text})
    rng.shuffle(rows)
    folder = tmp_path / "shards"
    folder.mkdir()
    per = -(-len(rows) // 4)
    for k in range(4):
        pq.write_table(pa.Table.from_pylist(rows[k * per : (k + 1) * per]), folder / f"shard-{k}.parquet")
    return folder, len(rows)


def decisions(run):
    with duckdb.connect(str(run / "curator.duckdb"), read_only=True) as con:
        docs = con.execute("SELECT id, reject_step, reject_reason, exact__dup_count, fuzzy__cluster, fuzzy__cluster_size FROM documents ORDER BY id").fetchall()
        groups = {name: con.execute(f"SELECT id, kept_id, cluster, size FROM {name} ORDER BY id").fetchall() for name in ("exact_groups", "fuzzy_groups")}
    return docs, groups


def test_dedup_gives_the_same_decisions_on_ray_and_local(ray_cluster, tmp_path, duplicated_shards, registry):
    folder, n = duplicated_shards
    pipe = load_pipeline(pipeline_file(tmp_path, PIPELINE), registry)
    local = run_pipeline(pipe, tmp_path / "local", inputs=[str(folder)], progress=False, workers=1)
    on_ray = run_pipeline(pipe, tmp_path / "ray", inputs=[str(folder)], progress=False, workers=2, executor="ray")
    assert local["balanced"] and on_ray["balanced"]
    docs, groups = decisions(tmp_path / "local")
    ray_docs, ray_groups = decisions(tmp_path / "ray")
    assert len(docs) == n
    assert docs == ray_docs
    assert groups == ray_groups
    # the comparison means something: both steps rejected copies
    steps = {r[1] for r in docs if r[1]}
    assert steps == {"exact", "fuzzy"}
    assert sum(1 for r in docs if r[1] == "exact") >= 25 and sum(1 for r in docs if r[1] == "fuzzy") >= 20
    assert [f["reasons"] for f in local["funnel"]] == [f["reasons"] for f in on_ray["funnel"]]
