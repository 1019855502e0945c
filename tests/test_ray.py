"""The Ray executor on a real local Ray cluster: same rows as the local executor."""

from __future__ import annotations

import os

import duckdb
import pytest
from conftest import pipeline_file

from curator import plugins
from curator.config import load_pipeline
from curator.runner import run_pipeline

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.ray

PIPELINE = """
steps:
  - step: text_stats
  - step: gopher_repetition
  - step: gopher_quality
  - step: percentile_threshold
    name: cut
    column: text_stats__words
    quantile: 0.5
  - step: range_filter
    name: longer_half
    column: text_stats__words
    min: ${cut.threshold}
"""


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory, example_plugin_site):
    # Workers import the example plugin too, so it can run in Ray pipelines.
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(example_plugin_site), os.environ.get("PYTHONPATH")]))}
    ray.init(num_cpus=3, include_dashboard=False, runtime_env={"env_vars": env}, _temp_dir=str(tmp_path_factory.mktemp("ray")), logging_level="WARNING")
    yield
    ray.shutdown()


def documents(run):
    con = duckdb.connect(str(run / "curator.duckdb"), read_only=True)
    return con.execute("SELECT id, reject_step, reject_reason, text_stats__words FROM documents ORDER BY id").fetchall()


def test_ray_and_local_executors_give_the_same_rows(ray_cluster, tmp_path, sharded_input, registry):
    pipe = load_pipeline(pipeline_file(tmp_path, PIPELINE), registry)
    local = run_pipeline(pipe, tmp_path / "local", inputs=[str(sharded_input)], progress=False, workers=1)
    on_ray = run_pipeline(pipe, tmp_path / "ray", inputs=[str(sharded_input)], progress=False, workers=2, executor="ray")
    assert local["balanced"] and on_ray["balanced"]
    assert local["kept"] == on_ray["kept"] > 0
    assert documents(tmp_path / "local") == documents(tmp_path / "ray")
    assert [f["reasons"] for f in local["funnel"]] == [f["reasons"] for f in on_ray["funnel"]]


def test_ray_run_resumes_and_quarantines(ray_cluster, tmp_path, sharded_input, registry):
    pipe = load_pipeline(pipeline_file(tmp_path, "steps:\n  - step: text_stats\n"), registry)
    (sharded_input / "broken.parquet").write_bytes(b"PAR1 not really")
    first = run_pipeline(pipe, tmp_path / "run", inputs=[str(sharded_input)], progress=False, workers=2, executor="ray")
    assert first["kept"] == 697 and first["unreadable"][0]["source"].endswith("broken.parquet")
    marker = tmp_path / "run" / "pass-0" / "_done" / "part-00000.json"
    before = marker.stat().st_mtime_ns
    run_pipeline(pipe, tmp_path / "run", inputs=[str(sharded_input)], progress=False, workers=2, executor="ray")
    assert marker.stat().st_mtime_ns == before


def test_third_party_plugin_runs_on_ray(ray_cluster, example_plugin, tmp_path, sharded_input):
    pipe = load_pipeline(pipeline_file(tmp_path, "steps:\n  - step: banned_words\n    words: [casino, porn]\n"), plugins.get_registry())
    local = run_pipeline(pipe, tmp_path / "local", inputs=[str(sharded_input)], progress=False)
    on_ray = run_pipeline(pipe, tmp_path / "ray", inputs=[str(sharded_input)], progress=False, workers=2, executor="ray")
    assert local["kept"] == on_ray["kept"] and local["rejected"] == on_ray["rejected"] > 0


def test_model_steps_run_on_an_actor_pool_with_the_same_rows(ray_cluster, tmp_path, sharded_input, registry):
    """fasttext_quality holds a model: on Ray it runs on actors (one load per actor), same rows as local."""
    from conftest import SHARED_DATA

    from curator.executors.ray import RayExecutor
    from curator_plugins.fasttext_quality import FastTextQuality

    assert FastTextQuality.holds_model
    text = f"""
steps:
  - step: fasttext_train
    name: train
    positive_files: ["{SHARED_DATA}/reference/python311_docs.jsonl.gz"]
    negative_files: ["{SHARED_DATA}/web/dolma_cc_sample.jsonl.gz"]
  - step: fasttext_quality
    name: q
    model: ${{train.model_path}}
    threshold: 0.5
"""
    pipe = load_pipeline(pipeline_file(tmp_path, text), registry)
    local = run_pipeline(pipe, tmp_path / "local", inputs=[str(sharded_input)], progress=False)
    engine = RayExecutor(workers=2)
    on_ray = run_pipeline(pipe, tmp_path / "ray", inputs=[str(sharded_input)], progress=False, executor=engine)
    q = "SELECT id, reject_reason, round(q__score, 6) FROM documents ORDER BY id"
    assert duckdb.connect(str(tmp_path / "local" / "curator.duckdb")).execute(q).fetchall() == duckdb.connect(str(tmp_path / "ray" / "curator.duckdb")).execute(q).fetchall()
    assert local["kept"] == on_ray["kept"] and 0 < local["kept"] < 697
