"""Paths in a pipeline file are relative to the file, not to the current directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import curator_cli, write_jsonl

from curator.config import load_pipeline

ROWS = [{"id": f"d{i}", "text": " ".join(["word"] * (i * 10 + 5))} for i in range(10)]

FILTER = """
input:
  path: data/docs.jsonl
steps:
  - step: text_stats
  - step: sql_filter
    where: text_stats__words >= 40
    reason: short
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """tmp/project/pipelines/p.yaml reading tmp/project/pipelines/data/docs.jsonl; tmp/elsewhere is another cwd."""
    folder = tmp_path / "project" / "pipelines"
    write_jsonl(folder / "data" / "docs.jsonl", ROWS)
    (folder / "p.yaml").write_text(FILTER)
    (tmp_path / "elsewhere").mkdir()
    return folder


def test_run_from_another_folder_reads_the_input_beside_the_pipeline(project, tmp_path):
    out = tmp_path / "elsewhere" / "run"
    stdout = curator_cli("run", str(project / "p.yaml"), "-o", "run", "-q", cwd=tmp_path / "elsewhere").stdout
    assert "kept + rejected = 10 = input 10: ok" in stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["inputs"] == [str((project / "data" / "docs.jsonl").resolve())]


def test_command_line_input_stays_relative_to_the_current_directory(project, tmp_path):
    write_jsonl(tmp_path / "elsewhere" / "mine.jsonl", ROWS[:4])
    stdout = curator_cli("run", str(project / "p.yaml"), "-i", "mine.jsonl", "-o", "run", "-q", cwd=tmp_path / "elsewhere").stdout
    assert "kept + rejected = 4 = input 4: ok" in stdout


def test_step_path_parameters_resolve_against_the_file_nested_ones_too(tmp_path, registry):
    (tmp_path / "models").mkdir()
    text = """
input: {path: /abs/input.jsonl}
steps:
  - step: fasttext_quality
    model: models/quality.bin
  - step: kenlm_train
    name: lm
    reference: [ref/a.jsonl, /abs/b.jsonl]
  - step: llm_seed_selector
    name: seeds
    few_shot_file: shots.jsonl
    cache: cache.sqlite
    llm: {type: openai, base_url: "http://127.0.0.1:1/v1", model: some-model}
    signals:
      fasttext: [{model: ft.bin, name: ref}]
      kenlm: {lm: "${lm.lm_path}", sp: "${lm.sp_path}"}
    human_labels: {path: ../labels.jsonl}
"""
    path = tmp_path / "p.yaml"
    path.write_text(text)
    pipeline = load_pipeline(path, registry)
    params = {s.name: s.params for s in pipeline.steps}
    base = tmp_path.resolve()
    assert pipeline.options.input.path == "/abs/input.jsonl"
    assert params["fasttext_quality"]["model"] == str(base / "models" / "quality.bin")
    assert params["lm"]["reference"] == [str(base / "ref" / "a.jsonl"), "/abs/b.jsonl"]
    seeds = params["seeds"]
    assert seeds["few_shot_file"] == str(base / "shots.jsonl")
    assert seeds["signals"]["fasttext"][0]["model"] == str(base / "ft.bin")
    assert seeds["human_labels"]["path"] == str(base.parent / "labels.jsonl")
    # a run artifact, a model *name* and an output file are not paths to resolve
    assert seeds["signals"]["kenlm"] == {"lm": "${lm.lm_path}", "sp": "${lm.sp_path}"}
    assert seeds["llm"]["model"] == "some-model"
    assert seeds["cache"] == "cache.sqlite"
    assert pipeline.warnings == []


def test_validate_names_missing_inputs_and_model_files(project, tmp_path):
    (project / "bad.yaml").write_text(
        """
input:
  path: data/nothing-*.jsonl
steps:
  - step: fasttext_quality
    model: models/missing.bin
"""
    )
    proc = curator_cli("validate", str(project / "bad.yaml"), check=False, cwd=tmp_path / "elsewhere")
    assert proc.returncode == 1
    assert f"{project / 'bad.yaml'}:5: step 'fasttext_quality': field 'model': '{project / 'models' / 'missing.bin'}' does not exist" in proc.stderr
    assert f"input '{project / 'data' / 'nothing-*.jsonl'}' matches no file" in proc.stderr
    good = curator_cli("validate", str(project / "p.yaml"), cwd=tmp_path / "elsewhere")
    assert "ok, 2 steps" in good.stdout


def test_a_path_written_relative_to_the_cwd_still_runs_with_a_warning(project, tmp_path):
    # written before paths followed the file: found from the cwd, and the user is told what to write
    (project / "old.yaml").write_text(FILTER.replace("data/docs.jsonl", "project/pipelines/data/docs.jsonl"))
    proc = curator_cli("validate", str(project / "old.yaml"), cwd=tmp_path)
    assert "is read relative to the current directory; write it relative to the pipeline file ('data/docs.jsonl')" in proc.stderr
    # from any other folder it is simply missing, and validate says so
    proc = curator_cli("validate", str(project / "old.yaml"), check=False, cwd=tmp_path / "elsewhere")
    assert proc.returncode == 1 and "matches no file" in proc.stderr and "warning" not in proc.stderr


def test_a_pipeline_given_as_text_has_nothing_to_be_relative_to(registry):
    from curator.config import Pipeline, parse_pipeline, resolve_paths

    options, specs = parse_pipeline(FILTER)
    pipeline = Pipeline(options, specs)
    resolve_paths(pipeline, registry)
    assert pipeline.options.input.path == "data/docs.jsonl"
