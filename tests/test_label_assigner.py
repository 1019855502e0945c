"""The label assigner: taxonomy files, the real embedded LLM labelling AG News, fastText distillation, assignment."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from conftest import SHARED_DATA, pipeline_file, read_jsonl, write_jsonl

from curator.config import load_pipeline
from curator.errors import ConfigError
from curator.runner import run_pipeline
from curator_plugins.label_prompts import load_taxonomy

AG_NEWS = SHARED_DATA / "topics" / "ag_news_test.jsonl.gz"
WEBORG_TOPICS = SHARED_DATA / "web" / "weborganizer_topics.yaml"
AG_LABELS = ["World", "Sports", "Business", "Sci/Tech"]
REPO_PIPELINES = Path(__file__).resolve().parents[1] / "pipelines"

AG_TAXONOMY = """labels:
  - name: World
    description: world news, politics, conflicts and diplomacy
  - name: Sports
    description: sports news, games, teams and athletes
  - name: Business
    description: business, companies, markets and the economy
  - name: Sci/Tech
    description: science and technology, computers, internet and space
"""


def con(run):
    return duckdb.connect(str(run / "curator.duckdb"), read_only=True)


def result_of(summary, step):
    return next(f for f in summary["funnel"] if f["step"] == step)["result"]


@pytest.fixture(scope="module")
def ag_news(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ag")
    rows = [{"id": r["id"], "text": r["text"], "label": r["label"]} for r in read_jsonl(AG_NEWS)]
    # a spread of the four classes (the file is not ordered by class, but take every 19th to be sure)
    write_jsonl(tmp / "ag.jsonl", rows[::19][:160])
    (tmp / "ag_labels.yaml").write_text(AG_TAXONOMY)
    return tmp


# -- taxonomy files (no LLM)


def test_weborganizer_prompt_file_is_a_taxonomy():
    labels = load_taxonomy(WEBORG_TOPICS)
    assert len(labels) == 24
    names = [label["name"] for label in labels]
    assert names[0] == "Adult Content" and "Software Development" in names and "Finance & Business" in names
    software = next(label for label in labels if label["name"] == "Software Development")
    assert software["description"].startswith("Includes: algorithms")


@pytest.mark.parametrize(
    "text, message",
    [
        ("- {name: A}\n- {name: a}\n", "appears twice"),
        ("- {name: A}\n", "at least 2 labels"),
        ("- {name: A}\n- {description: x}\n", "label 2: needs a non-empty `name`"),
        ("- {name: A}\n- {name: other}\n", "reserved"),
        ("- {name: A, colour: red}\n- {name: B}\n", "unknown keys ['colour']"),
        ("just: [a mapping]\n", "a mapping with `labels:`"),
        ("[unclosed\n", "not valid YAML"),
        ("\n".join(f"- n{i}" for i in range(27)), "at most 26"),
    ],
)
def test_bad_taxonomy_files_are_named(tmp_path, text, message):
    path = tmp_path / "t.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_taxonomy(path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_json_and_bare_names_are_accepted(tmp_path):
    (tmp_path / "t.json").write_text(json.dumps([{"name": "Cats", "description": "felines"}, {"name": "Dogs"}]))
    assert load_taxonomy(tmp_path / "t.json") == [{"name": "Cats", "description": "felines"}, {"name": "Dogs", "description": ""}]
    (tmp_path / "n.yaml").write_text("- Cats\n- Dogs\n")
    assert [label["name"] for label in load_taxonomy(tmp_path / "n.yaml")] == ["Cats", "Dogs"]


# -- the student alone: fastText on gold labels (no LLM), then assignment


def test_train_and_assign_on_gold_labels(ag_news, tmp_path, registry):
    text = """
steps:
  - step: label_train
    name: train
    sql: SELECT text, label FROM corpus
    student: fasttext
    search: false
  - step: label_assign
    name: labels
    model: ${train.model_path}
    top_k: 2
    top_floor: 0.2
  - step: label_assign
    name: sure
    model: ${train.model_path}
    min_confidence: 0.9
"""
    rows = [{"id": r["id"], "text": r["text"], "label": r["label"]} for r in read_jsonl(AG_NEWS)][:1200] + [{"id": "blank", "text": "   "}]
    write_jsonl(tmp_path / "in.jsonl", rows)
    summary = run_pipeline(load_pipeline(pipeline_file(tmp_path, text), registry), tmp_path / "run", inputs=[str(tmp_path / "in.jsonl")], progress=False)
    train = result_of(summary, "train")
    assert train["holdout"] >= 200 and train["accuracy"] > 0.6 and train["macro_f1"] > 0.6, train
    assert set(train["eval"]["confusion"]) == set(AG_LABELS) and not train["warnings"]
    db = con(tmp_path / "run")
    assert db.execute("SELECT count(*) FROM kept").fetchone()[0] == len(rows) and summary["balanced"]
    got = dict(db.execute("SELECT labels__label, count(*) FROM kept GROUP BY 1").fetchall())
    assert set(got) <= set(AG_LABELS) | {"other"} and sum(got.values()) == len(rows)
    assert db.execute("SELECT labels__label, labels__confidence FROM kept WHERE id = 'blank'").fetchone() == ("other", 0.0)
    # the classifier agrees with the gold label on most (training) documents; confidences are probabilities
    agree, lo, hi = db.execute("SELECT avg((labels__label = label)::int), min(labels__confidence), max(labels__confidence) FROM kept WHERE id <> 'blank'").fetchone()
    assert agree > 0.8 and 0 <= lo <= hi <= 1
    # top_labels: the top label first, every listed label at or above the floor
    for top, label in db.execute("SELECT labels__top_labels, labels__label FROM kept WHERE id <> 'blank'").fetchall():
        assert 1 <= len(top) <= 2 and (top[0] == label or not top)
    # min_confidence: less sure documents are `other`, the rest keep the same label
    others, differ = db.execute("SELECT count(*) FILTER (WHERE sure__label = 'other'), count(*) FILTER (WHERE sure__label <> 'other' AND sure__label <> labels__label) FROM kept").fetchone()
    assert 0 < others < len(rows) and differ == 0


def test_train_warns_when_labels_are_noise(tmp_path, registry):
    rows = [{"id": r["id"], "text": r["text"], "label": AG_LABELS[i % 4]} for i, r in enumerate(read_jsonl(AG_NEWS, limit=400))]
    write_jsonl(tmp_path / "in.jsonl", rows)
    text = "steps:\n  - step: label_train\n    name: train\n    sql: SELECT text, label FROM corpus\n    student: fasttext\n"
    summary = run_pipeline(load_pipeline(pipeline_file(tmp_path, text), registry), tmp_path / "run", inputs=[str(tmp_path / "in.jsonl")], progress=False)
    train = result_of(summary, "train")
    assert train["accuracy"] < 0.4 and any("commonest label" in w for w in train["warnings"])
    # under 2,000 examples the settings are chosen by cross-validated accuracy (also near chance here)
    assert len(train["search"]["tried"]) >= 5 and train["search"]["cv_accuracy"] < 0.4


# -- the embedding student (no LLM): gold labels on 240 documents, judged on 200 it never saw


@pytest.fixture(scope="module")
def split_corpus(ag_news):
    rows = read_jsonl(AG_NEWS)
    train = [{"id": r["id"], "text": r["text"], "label": r["label"], "split": "train"} for r in rows[1::23][:240]]
    test = [{"id": r["id"], "text": r["text"], "label": r["label"], "split": "test"} for r in rows[2::23][:200]]
    write_jsonl(ag_news / "split.jsonl", train + test + [{"id": "blank", "text": " ", "split": "test"}])
    return ag_news / "split.jsonl"


STUDENT = """
steps:
  - step: label_train
    name: train
    sql: SELECT text, label FROM corpus WHERE split = 'train'
    student: {student}
    taxonomy: {taxonomy}
    search: false
    C: 3
  - step: label_assign
    name: labels
    model: ${{train.model_path}}
    top_k: 2
"""


def unseen_accuracy(run):
    return con(run).execute("SELECT avg((labels__label = label)::int) FROM kept WHERE split = 'test' AND id <> 'blank'").fetchone()[0]


def test_embedding_student_beats_fasttext_on_few_labels(ag_news, split_corpus, tmp_path, registry):
    got = {}
    for student in ("embedding", "fasttext"):
        text = STUDENT.format(student=student, taxonomy=ag_news / "ag_labels.yaml")
        summary = run_pipeline(load_pipeline(pipeline_file(tmp_path, text, f"{student}.yaml"), registry), tmp_path / student, inputs=[str(split_corpus)], progress=False)
        assert summary["balanced"] and summary["kept"] == 441
        got[student] = (result_of(summary, "train"), unseen_accuracy(tmp_path / student))
    train, accuracy = got["embedding"]
    assert train["student"] == "embedding" and train["model_path"].endswith("student.json") and train["judge"]
    assert train["holdout"] >= 40 and train["accuracy"] > 0.7, train
    # 240 gold labels: sentence embeddings generalise where n-grams cannot yet (measured 0.8+ vs ~0.5)
    assert accuracy > 0.72 and accuracy > got["fasttext"][1] + 0.1, (accuracy, got["fasttext"][1])
    db = con(tmp_path / "embedding")
    assert db.execute("SELECT labels__label, labels__confidence, labels__top_labels FROM kept WHERE id = 'blank'").fetchone() == ("other", 0.0, [])
    for label, conf, top in db.execute("SELECT labels__label, labels__confidence, labels__top_labels FROM kept WHERE id <> 'blank'").fetchall():
        assert label in AG_LABELS and 0 < conf <= 1 and top[0] == label and len(top) <= 2


def test_embedding_student_distilled_into_fasttext(ag_news, split_corpus, tmp_path, registry):
    text = STUDENT.format(student="embedding", taxonomy=ag_news / "ag_labels.yaml").replace("    C: 3\n", "    C: 3\n    distill_sample: 150\n    where: split = 'test'\n")
    summary = run_pipeline(load_pipeline(pipeline_file(tmp_path, text), registry), tmp_path / "run", inputs=[str(split_corpus)], progress=False)
    train = result_of(summary, "train")
    # label_assign runs the fastText model; the embedding student stays beside it
    assert train["model_path"].endswith("model.bin") and Path(train["student_path"]).is_file()
    assert train["distilled"] == 150 and sum(train["distilled_label_counts"].values()) == 150
    assert train["fasttext_eval"]["n"] == 30 and train["fasttext_accuracy"] is not None
    assert unseen_accuracy(tmp_path / "run") > 0.5 and summary["balanced"]


def test_an_edited_taxonomy_retrains_the_student(ag_news, split_corpus, tmp_path, registry):
    taxonomy = tmp_path / "labels.yaml"
    taxonomy.write_text(AG_TAXONOMY)
    text = f"steps:\n  - step: label_train\n    name: train\n    sql: SELECT text, label FROM corpus WHERE split = 'train'\n    taxonomy: {taxonomy}\n    C: 3\n"
    pipe = pipeline_file(tmp_path, text)
    run_pipeline(load_pipeline(pipe, registry), tmp_path / "run", inputs=[str(split_corpus)], progress=False)
    student = tmp_path / "run" / "artifacts" / "train" / "student.json"
    labels = json.loads(student.read_text())["labels"]
    before = json.loads(student.read_text())["judge"]["vectors"]
    taxonomy.write_text(AG_TAXONOMY.replace("sports news, games, teams and athletes", "football, tennis and the Olympics"))
    run_pipeline(load_pipeline(pipe, registry), tmp_path / "run", inputs=[str(split_corpus)], progress=False)
    after = json.loads(student.read_text())["judge"]["vectors"]
    # the Sports vector follows its new description; the others stay
    assert {name for name, a, b in zip(labels, before, after) if a != b} == {"Sports"}


def test_a_broken_student_file_is_named(tmp_path, registry):
    from curator_plugins.label_assigner import EmbeddingStudent

    bad = tmp_path / "student.json"
    bad.write_text('{"kind": "something else"}')
    with pytest.raises(ConfigError, match=r"student.json: not a label_train student.json"):
        EmbeddingStudent.load(bad)


def test_few_shot_file_with_a_label_outside_the_taxonomy(ag_news, tmp_path, registry):
    write_jsonl(tmp_path / "shots.jsonl", [{"text": "Stocks rose.", "label": "Business"}, {"text": "A goal.", "label": "Football"}])
    text = f"""
steps:
  - step: label_llm
    name: llm
    taxonomy: {ag_news / "ag_labels.yaml"}
    few_shot_file: {tmp_path / "shots.jsonl"}
    sample_size: 2
"""
    with pytest.raises(ConfigError, match=r"shots.jsonl:2: label 'Football' is not in the taxonomy"):
        run_pipeline(load_pipeline(pipeline_file(tmp_path, text), registry), tmp_path / "run", inputs=[str(ag_news / "ag.jsonl")], progress=False)


# -- end to end with the real embedded model (12 LLM calls)

pytest.importorskip("llama_cpp")

E2E = """
steps:
  - step: label_taxonomy
    name: taxonomy
    path: {taxonomy}
  - step: label_llm
    name: llm
    taxonomy: ${{taxonomy.taxonomy_path}}
    sample_size: 12
    kind: news article
    label_column: label
    few_shot_file: {shots}
    few_shot: 4
    max_doc_chars: 300
  - step: label_train
    name: train
    holdout_fraction: 0
  - step: label_assign
    name: labels
    model: ${{train.model_path}}
"""


@pytest.fixture(scope="module")
def e2e(ag_news):
    from curator import plugins

    plugins.reset()
    # few-shot examples from documents outside the corpus (AG News rows the run never reads)
    shots = [{"text": r["text"], "label": r["label"]} for r in read_jsonl(AG_NEWS, limit=40)[1::7]]
    write_jsonl(ag_news / "shots.jsonl", shots)
    text = E2E.format(taxonomy=ag_news / "ag_labels.yaml", shots=ag_news / "shots.jsonl")
    pipe = load_pipeline(pipeline_file(ag_news, text), plugins.get_registry())
    summary = run_pipeline(pipe, ag_news / "run", inputs=[str(ag_news / "ag.jsonl")], progress=False)
    return ag_news / "run", summary


def test_llm_labels_table_with_distributions(e2e):
    run, summary = e2e
    db = con(run)
    assert db.execute("SELECT name FROM taxonomy ORDER BY name").fetchall() == [(n,) for n in sorted(AG_LABELS)]
    rows = db.execute("SELECT label, confidence, distribution, raw, error, backend, model, gold FROM llm_labels").fetchall()
    assert len(rows) == 12
    for label, confidence, distribution, raw, error, backend, model, gold in rows:
        assert backend == "embedded" and model.startswith("gemma-3-270m") and raw and gold in AG_LABELS
        if label is None:  # a failure is recorded with its reason, never guessed
            assert error and confidence is None and distribution is None
            continue
        assert label in AG_LABELS  # never an unknown code
        dist = json.loads(distribution)
        assert set(dist) == set(AG_LABELS) and abs(sum(dist.values()) - 1) < 1e-3
        assert confidence == pytest.approx(max(dist.values()), abs=1e-4) and dist[label] == max(dist.values())
    # the teacher's distribution is the LLM's times the embedding judge's, renormalised
    for llm_d, judge_d, dist, llm_label, judge_label in db.execute(
        "SELECT llm_distribution, judge_distribution, distribution, llm_label, judge_label FROM llm_labels WHERE label IS NOT NULL"
    ).fetchall():
        llm_d, judge_d, dist = json.loads(llm_d), json.loads(judge_d), json.loads(dist)
        product = {k: max(llm_d[k], 1e-6) * judge_d[k] for k in AG_LABELS}
        total = sum(product.values())
        assert all(abs(product[k] / total - dist[k]) < 2e-3 for k in AG_LABELS)
        assert llm_d[llm_label] == max(llm_d.values()) and judge_d[judge_label] == max(judge_d.values())
    llm = result_of(summary, "llm")
    assert llm["judge"] == "embedding" and llm["gold_agreement_judge_alone"]["n"] == 12
    assert llm["llm_calls"] == 12 and llm["few_shot"] == 4 and llm["parsed"] + llm["failed"] == 12
    assert llm["gold_agreement"]["n"] == llm["parsed"]


def test_classifier_labels_every_document(e2e):
    run, summary = e2e
    db = con(run)
    total, labelled, unknown = db.execute(
        "SELECT count(*), count(labels__label), count(*) FILTER (WHERE labels__label NOT IN ('World', 'Sports', 'Business', 'Sci/Tech', 'other')) FROM kept"
    ).fetchone()
    assert total == labelled == 160 and unknown == 0
    assert db.execute("SELECT count(*) FROM rejected").fetchone()[0] == 0 and summary["balanced"]
    train = result_of(summary, "train")
    llm_labels = {r[0] for r in db.execute("SELECT DISTINCT label FROM llm_labels WHERE label IS NOT NULL").fetchall()}
    assert set(train["labels"]) == llm_labels  # the student learned exactly the labels the teacher gave


def test_rerun_answers_from_the_cache(e2e, registry):
    run, _ = e2e
    folder = run.parent
    text = E2E.format(taxonomy=folder / "ag_labels.yaml", shots=folder / "shots.jsonl").replace("holdout_fraction: 0", "holdout_fraction: 0\n    refit: false")
    summary = run_pipeline(load_pipeline(pipeline_file(folder, text, "again.yaml"), registry), folder / "run2", inputs=[str(folder / "ag.jsonl")], progress=False)
    llm = result_of(summary, "llm")
    assert llm["llm_calls"] == 0 and llm["cached"] == 12


# -- curator run --set STEP.PARAM=VALUE (the real CLI, no LLM)


def test_set_overrides_a_step_parameter(tmp_path):
    from conftest import curator_cli

    (tmp_path / "a.yaml").write_text("- Cats\n- Dogs\n")
    (tmp_path / "b.yaml").write_text("- {name: Red, description: warm}\n- Green\n- Blue\n")
    write_jsonl(tmp_path / "in.jsonl", [{"id": "1", "text": "a cat"}, {"id": "2", "text": "a dog"}])
    pipe = pipeline_file(tmp_path, f"steps:\n  - step: label_taxonomy\n    name: taxonomy\n    path: {tmp_path / 'a.yaml'}\n")
    curator_cli("run", str(pipe), "-i", str(tmp_path / "in.jsonl"), "-o", str(tmp_path / "run"), "-q", "--set", f"taxonomy.path={tmp_path / 'b.yaml'}")
    names = [r[0] for r in con(tmp_path / "run").execute("SELECT name FROM taxonomy").fetchall()]
    assert names == ["Red", "Green", "Blue"]
    # a step whose required parameter is a ${...} reference can be overridden too (the shipped pipeline)
    proc = curator_cli("validate", str(REPO_PIPELINES / "topics_given.yaml"))
    assert proc.returncode == 0
    from curator import plugins
    from curator.overrides import apply_overrides

    pipe_given = load_pipeline(REPO_PIPELINES / "topics_given.yaml", plugins.get_registry())
    apply_overrides(pipe_given, ["llm.sample_size=8", f"taxonomy.path={tmp_path / 'b.yaml'}"], plugins.get_registry())
    llm = next(s for s in pipe_given.steps if s.name == "llm")
    assert llm.params["sample_size"] == 8 and llm.params["taxonomy"] == "${taxonomy.taxonomy_path}"
    with pytest.raises(ConfigError, match=r"--set 'llm.sample_size=0': step 'llm' \(label_llm\): sample_size"):
        apply_overrides(pipe_given, ["llm.sample_size=0"], plugins.get_registry())
    for override, message in [
        ("nosuch.path=x", "the pipeline has no step named 'nosuch' (steps: taxonomy)"),
        ("taxonomy.colour=red", "step 'taxonomy' (label_taxonomy) has no parameter 'colour'"),
        ("taxonomy.generate={sample_size: 0}", "generate.sample_size: Input should be greater than or equal to 2"),
        ("taxonomy.generate={sample_size: 20}", "give path: (a taxonomy file) or generate:"),
        ("taxonomy.path=null", "give path: (a taxonomy file) or generate:"),
        ("taxonomy", "expected STEP.PARAM=VALUE"),
        ("taxonomy.seed=[1", "not valid YAML"),
    ]:
        proc = curator_cli("run", str(pipe), "-i", str(tmp_path / "in.jsonl"), "-o", str(tmp_path / "run2"), "-q", "--set", override, check=False)
        assert proc.returncode != 0 and f"--set {override!r}" in proc.stderr and message in proc.stderr, proc.stderr


# -- label_taxonomy generate: (TnT-LLM phase 1)


def test_generated_topics_are_cleaned_and_merged():
    from curator_plugins.label_prompts import clean_topic, merge_topics

    assert clean_topic(" sports news.\nText: more") == "Sports news"
    assert clean_topic('"Cooking and recipes"') == "Cooking and recipes"
    assert clean_topic("") is None and clean_topic("...") is None
    assert clean_topic("a very long rambling answer that is not a topic at all") is None
    counts = {"Sports": 3, "Sports news": 2, "Sport": 1, "Health": 2, "Cooking and recipes": 1, "Recipes": 1}
    merged, examples = merge_topics(counts, {})
    assert merged == {"Sports": 6, "Health": 2, "Recipes": 2}  # on a tie, the shorter name
    assert sum(merged.values()) == sum(counts.values())


def test_generate_proposes_a_taxonomy_that_labels_can_use(tmp_path, registry):
    rows = [{"id": r["id"], "text": r["text"]} for r in read_jsonl(SHARED_DATA / "web" / "weborganizer_examples.jsonl.gz", limit=600)[::60]]
    write_jsonl(tmp_path / "web.jsonl", rows)
    text = """
steps:
  - step: label_taxonomy
    name: taxonomy
    generate: {sample_size: 6, batch_size: 3, max_labels: 3, min_count: 1}
"""
    summary = run_pipeline(load_pipeline(pipeline_file(tmp_path, text), registry), tmp_path / "run", inputs=[str(tmp_path / "web.jsonl")], progress=False)
    result = result_of(summary, "taxonomy")
    assert result["source"] == "generated" and result["documents_read"] == 6 and len(result["rounds"]) == 2
    assert 2 <= result["n_labels"] <= 3 and result["llm_calls"] <= 6 + 3
    # the file written is a taxonomy the other steps accept, and the table matches it
    labels = load_taxonomy(result["taxonomy_path"])
    assert [label["name"] for label in labels] == result["labels"]
    assert all(label["description"] for label in labels)
    assert [r[0] for r in con(tmp_path / "run").execute("SELECT name FROM taxonomy").fetchall()] == result["labels"]
    # every chosen label was proposed for at least one document, the most frequent first
    counts = [result["proposed"][name] for name in result["labels"]]
    assert counts == sorted(counts, reverse=True) and min(counts) >= 1


# -- the Ray executor gives the same labels (the model trained once, assigned by both executors)


@pytest.mark.ray
def test_ray_and_local_assign_identical_labels(tmp_path, registry):
    ray = pytest.importorskip("ray")
    rows = [{"id": r["id"], "text": r["text"], "label": r["label"]} for r in read_jsonl(AG_NEWS, limit=800)]
    write_jsonl(tmp_path / "in.jsonl", rows)
    train = "steps:\n  - step: label_train\n    name: train\n    sql: SELECT text, label FROM corpus\n    student: fasttext\n    search: false\n"
    summary = run_pipeline(load_pipeline(pipeline_file(tmp_path, train, "train.yaml"), registry), tmp_path / "train", inputs=[str(tmp_path / "in.jsonl")], progress=False)
    model = result_of(summary, "train")["model_path"]
    assign = f"steps:\n  - step: label_assign\n    name: labels\n    model: {model}\n    top_k: 2\n"
    pipe = load_pipeline(pipeline_file(tmp_path, assign, "assign.yaml"), registry)
    local = run_pipeline(pipe, tmp_path / "local", inputs=[str(tmp_path / "in.jsonl")], progress=False, workers=1)
    import shutil
    import tempfile

    ray_tmp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # Ray's socket paths must stay under 107 bytes
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=ray_tmp, logging_level="WARNING")
    try:
        on_ray = run_pipeline(pipe, tmp_path / "on_ray", inputs=[str(tmp_path / "in.jsonl")], progress=False, workers=1, executor="ray")
    finally:
        ray.shutdown()
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert local["balanced"] and on_ray["balanced"] and local["kept"] == on_ray["kept"] == len(rows)
    query = "SELECT id, labels__label, round(labels__confidence, 6), labels__top_labels FROM kept ORDER BY id"
    got_local = con(tmp_path / "local").execute(query).fetchall()
    assert got_local == con(tmp_path / "on_ray").execute(query).fetchall()
    assert {r[1] for r in got_local} <= set(AG_LABELS)


def test_weborganizer_demonstrations_are_few_shot_examples():
    from curator_plugins.label_assigner import _examples

    examples = _examples(WEBORG_TOPICS)
    names = {label["name"] for label in load_taxonomy(WEBORG_TOPICS)}
    assert len(examples) == 5 and all(label in names and text for _, text, label in examples)
