"""Pipeline files: errors name the file, the line, the step and the field."""

from __future__ import annotations

import pytest
from conftest import curator_cli, pipeline_file

from curator.config import load_pipeline
from curator.errors import ConfigError


def test_unknown_step_suggests_the_nearest_name(tmp_path, registry):
    path = pipeline_file(tmp_path, "steps:\n  - step: noop\n  - step: gopher_qualty\n")
    with pytest.raises(ConfigError) as err:
        load_pipeline(path, registry)
    message = str(err.value)
    assert f"{path}:3" in message and "gopher_qualty" in message and "did you mean 'gopher_quality'" in message


def test_bad_parameter_names_file_line_step_and_field(tmp_path, registry):
    path = pipeline_file(
        tmp_path,
        "name: x\nsteps:\n  - step: gopher_quality\n    name: gopher\n    min_doc_words: many\n    min_stop_wordz: 3\n",
    )
    with pytest.raises(ConfigError) as err:
        load_pipeline(path, registry)
    lines = str(err.value).splitlines()
    assert any(f"{path}:5" in line and "'gopher'" in line and "min_doc_words" in line and "integer" in line for line in lines)
    assert any(f"{path}:6" in line and "min_stop_wordz" in line and "unknown parameter" in line for line in lines)


def test_reference_must_name_an_earlier_fit_step(tmp_path, registry):
    path = pipeline_file(
        tmp_path,
        "steps:\n  - step: text_stats\n  - step: range_filter\n    column: text_stats__words\n    min: ${cut.threshold}\n",
    )
    with pytest.raises(ConfigError, match="must name a fit step that comes earlier"):
        load_pipeline(path, registry)


def test_duplicate_step_names_and_bad_names(tmp_path, registry):
    path = pipeline_file(tmp_path, "steps:\n  - step: noop\n  - step: noop\n  - step: noop\n    name: Bad-Name\n")
    with pytest.raises(ConfigError) as err:
        load_pipeline(path, registry)
    assert "used twice" in str(err.value) and "Bad-Name" in str(err.value)


def test_unknown_top_level_field_and_invalid_yaml(tmp_path, registry):
    with pytest.raises(ConfigError, match="stpes.*unknown field"):
        load_pipeline(pipeline_file(tmp_path, "stpes: []\n"), registry)
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_pipeline(pipeline_file(tmp_path, "steps: [\n", "b.yaml"), registry)


def test_validate_command(tmp_path):
    good = curator_cli("validate", "pipelines/demo.yaml").stdout
    assert "ok" in good and "gopher_repetition" in good and "llm_seed_selector" in good
    bad = pipeline_file(tmp_path, "steps:\n  - step: fineweb_qualty\n")
    proc = curator_cli("validate", str(bad), check=False)
    assert proc.returncode == 1
    assert "fineweb_quality" in proc.stderr and f"{bad}:2" in proc.stderr and "Traceback" not in proc.stderr
