"""Taxonomy files, label codes, prompts and free-text generation for the label assigner.

Kept beside ``label_assigner.py`` so the steps read as steps. Nothing here
imports a model at import time.

* A **taxonomy** is a list of ``{name, description}``. Files accepted (YAML or
  JSON): a list of such mappings (or of bare names), a mapping with a
  ``labels:`` list, or WebOrganizer's prompt file, whose ``choices:`` are
  strings ``"Name\\n - Includes: ..."`` (first line the name, the rest its
  description).
* Each label gets a one-token **code** (`` A``, `` B``, ... with the leading
  space: Gemma's tokenizer reads ``"Topic: A"`` as ``Topic``, ``:``, `` A``), so
  the label is the next token after ``Topic:`` and its probability is read
  from the model, never parsed out of free text.
* **Generation** (taxonomy proposal) needs free text: ``generate_text`` asks
  the embedded model (through the backend's llama.cpp object) or an
  OpenAI-compatible endpoint for a short greedy completion, cached like grades.
"""

from __future__ import annotations

import json
import re
import string
import time
from pathlib import Path
from typing import Any

import yaml

from curator.errors import ConfigError
from curator.llm import Answer, AnswerCache, LLMBackend

#: codes for up to 26 labels; each is one token for Gemma 3 (checked by the embedded backend on use)
CODES = [" " + c for c in string.ascii_uppercase]
OTHER = "other"


def load_taxonomy(path: str | Path) -> list[dict[str, str]]:
    """``[{name, description}]`` from a YAML/JSON file; errors name the file and the entry."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"taxonomy file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))  # JSON is YAML
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid YAML or JSON: {exc}") from None
    if isinstance(data, dict):
        if isinstance(data.get("labels"), list):
            data = data["labels"]
        elif isinstance(data.get("choices"), list):  # WebOrganizer's prompt file
            data = [_split_choice(c, path, i) for i, c in enumerate(data["choices"])]
        else:
            raise ConfigError(f"{path}: a taxonomy is a list of {{name, description}}, or a mapping with `labels:` (or WebOrganizer's `choices:`)")
    if not isinstance(data, list):
        raise ConfigError(f"{path}: a taxonomy is a list of {{name, description}}, got {type(data).__name__}")
    labels: list[dict[str, str]] = []
    for i, item in enumerate(data):
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"].strip():
            raise ConfigError(f"{path}: label {i + 1}: needs a non-empty `name` (got {item!r:.80})")
        extra = set(item) - {"name", "description"}
        if extra:
            raise ConfigError(f"{path}: label {i + 1} ({item['name']!r}): unknown keys {sorted(extra)} (use name and description)")
        description = item.get("description") or ""
        if not isinstance(description, str):
            raise ConfigError(f"{path}: label {i + 1} ({item['name']!r}): description must be text")
        labels.append({"name": " ".join(item["name"].split()), "description": " ".join(description.split())})
    check_labels(labels, str(path))
    return labels


def _split_choice(choice: Any, path: Path, i: int) -> dict[str, str]:
    if not isinstance(choice, str) or not choice.strip():
        raise ConfigError(f"{path}: choices[{i}]: expected text, got {choice!r:.80}")
    first, _, rest = choice.strip().partition("\n")
    # " - Includes: a, b\n - For x, choose y instead" -> "Includes: a, b. For x, choose y instead"
    parts = [line.strip().lstrip("-").strip() for line in rest.splitlines() if line.strip()]
    return {"name": first.strip(), "description": ". ".join(p.rstrip(".") for p in parts)}


def check_labels(labels: list[dict[str, str]], where: str) -> None:
    names = [label["name"] for label in labels]
    if len(names) < 2:
        raise ConfigError(f"{where}: a taxonomy needs at least 2 labels, got {len(names)}")
    if len(names) > len(CODES):
        raise ConfigError(f"{where}: {len(names)} labels; at most {len(CODES)} fit one-token codes (A-Z)")
    seen: dict[str, str] = {}
    for name in names:
        key = name.casefold()
        if key in seen:
            raise ConfigError(f"{where}: label {name!r} appears twice")
        if key == OTHER:
            raise ConfigError(f"{where}: {OTHER!r} is reserved for documents below min_confidence")
        seen[key] = name


def write_taxonomy(labels: list[dict[str, str]], path: Path) -> None:
    """YAML a person can edit and give back as ``path:``."""
    header = "# label taxonomy: edit freely and pass it back as `path:` (name and description per label)\n"
    path.write_text(header + yaml.safe_dump({"labels": labels}, sort_keys=False, allow_unicode=True, width=120), encoding="utf-8")


def one_line(text: str, max_chars: int) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= max_chars else text[:max_chars] + " …"


def label_codes(backend: LLMBackend, names: list[str], mode: str) -> list[str]:
    """The one-token answer for each label.

    ``names``: the first token of `` <name>`` — a base model reading "Topic:"
    already puts its mass on words like " World" or " Sports" (measured: with
    letter codes and no examples, 39 of 40 AG News answers had under 3 % on the
    letters). Needs the tokenizer (embedded backend) and distinct first tokens.
    ``letters``: `` A``, `` B``, ... (any backend). ``auto``: names when possible.
    """
    if mode in ("auto", "names") and backend.name == "embedded":
        llm = backend.llm  # type: ignore[attr-defined]
        firsts = []
        for name in names:
            tokens = llm.tokenize((" " + name).encode("utf-8"), add_bos=False, special=False)
            firsts.append(llm.detokenize(tokens[:1]).decode("utf-8", "replace") if tokens else "")
        if len(set(firsts)) == len(names) and all(f.strip() and "\ufffd" not in f for f in firsts):
            return firsts
        if mode == "names":
            raise ConfigError(f"label names do not start with distinct tokens ({firsts}): use codes: letters")
    elif mode == "names":
        raise ConfigError("codes: names needs the embedded backend's tokenizer; use codes: letters with an endpoint")
    return CODES[: len(names)]


def label_prompt(labels: list[dict[str, str]], codes: list[str], shots: list[tuple[str, str]], max_shot_chars: int, kind: str = "text") -> str:
    """The shared prefix: the labels (with their codes) and descriptions, then labelled examples (a completion prompt for a base model)."""
    letters = codes == CODES[: len(codes)]
    lines = [f"Each {kind} below is classified into exactly one of these topics:"]
    for code, label in zip(codes, labels):
        head = f"{code.strip()}. {label['name']}" if letters else label["name"]
        lines.append(head + (f": {label['description']}" if label["description"] else ""))
    prompt = "\n".join(lines) + "\n\n"
    index = {label["name"]: (code if letters else " " + label["name"]) for code, label in zip(codes, labels)}
    for text, name in shots:
        prompt += f"Text: {one_line(text, max_shot_chars)}\nTopic:{index[name]}\n\n"
    return prompt


def label_suffix(text: str, max_chars: int) -> str:
    # ends with "Topic:" and no space: the codes carry the space (" A" is one token)
    return f"Text: {one_line(text, max_chars)}\nTopic:"


# -- free-text generation (taxonomy proposal)


def generate_text(backend: LLMBackend, cache: AnswerCache | None, prompt: str, max_tokens: int, stop: list[str]) -> Answer:
    """A greedy completion of ``prompt`` (raw text in ``Answer.raw``), cached; failures recorded, never raised."""
    params = {"generate": max_tokens, "stop": stop}
    key = AnswerCache.key(backend.name, backend.model_id, prompt, params)
    if cache is not None:
        hit = cache.get(key)
        if hit is not None:
            return hit
    started = time.perf_counter()
    try:
        if backend.name == "embedded":
            llm = backend.llm  # type: ignore[attr-defined]
            backend._prefix = None  # type: ignore[attr-defined]  # the KV cache no longer holds the grading prefix
            out = llm.create_completion(prompt, max_tokens=max_tokens, temperature=0.0, stop=stop)
            text = out["choices"][0]["text"]
        else:
            out = backend._post({"model": backend.config.model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stop": stop})  # type: ignore[attr-defined]
            text = out["choices"][0]["text"]
            if not isinstance(text, str):
                raise ValueError("completion text is not a string")
        answer = Answer(None, None, text[:2000])
    except Exception as exc:  # noqa: BLE001 - a failed generation is recorded and skipped, never a crashed run
        return Answer(None, None, "", error=f"model failed: {type(exc).__name__}: {str(exc)[:200]}")
    answer.seconds = time.perf_counter() - started
    if cache is not None:
        cache.put(key, answer)
    return answer


# Our own demonstrations of "text -> short topic" for a base model (it continues the pattern).
TOPIC_SHOTS = [
    ("Preheat the oven to 180C. Mix the flour, sugar and butter, then add two eggs and bake for 25 minutes.", "Cooking and recipes"),
    ("The striker scored twice in the second half as the home side won the league match 3-1.", "Sports"),
    ("Install the package with pip, then import the module and call the function with a list of file names.", "Software development"),
    ("Shares fell 4% after the company reported lower quarterly profits and cut its forecast.", "Business and finance"),
    ("Symptoms include fever and a cough; see a doctor if they last more than a week.", "Health"),
]

DESCRIBE_SHOTS = [
    ("Sports", "matches, teams, athletes, results and competitions"),
    ("Health", "medicine, illnesses, treatments and wellbeing"),
    ("Software development", "programming, code, tools and software projects"),
]


def topic_prompt(text: str, max_chars: int) -> str:
    shots = "".join(f"Text: {t}\nTopic: {name}\n\n" for t, name in TOPIC_SHOTS)
    return "Each text is followed by its topic in a few words.\n\n" + shots + f"Text: {one_line(text, max_chars)}\nTopic:"


def describe_prompt(name: str, examples: list[str]) -> str:
    shots = "".join(f"Topic: {n}\nCovers: {d}\n\n" for n, d in DESCRIBE_SHOTS)
    seen = "; ".join(examples[:3])
    return "Each topic is followed by what it covers.\n\n" + shots + f"Topic: {name}\n" + (f"(seen as: {seen})\n" if seen else "") + "Covers:"


_WORD = re.compile(r"[a-z0-9]+")
_STOP = {"and", "or", "the", "of", "a", "an", "in", "on", "for", "to", "with", "news", "topic", "general", "other"}


def clean_topic(raw: str) -> str | None:
    """The first line of a generated topic, tidied; None when nothing usable came back."""
    line = (raw or "").strip().splitlines()[0] if (raw or "").strip() else ""
    line = re.sub(r"[\"'`*#_\[\]()]", "", line).strip(" .,:;-")
    words = line.split()
    if not words or len(words) > 6 or len(line) > 60:
        return None
    if not _WORD.search(line.lower()):
        return None
    return " ".join(w if w.isupper() else w.capitalize() if i == 0 else w.lower() for i, w in enumerate(words))


def topic_key(name: str) -> frozenset[str]:
    """Content words, crudely singularised: 'Sports news' and 'sport' meet."""
    words = set()
    for w in _WORD.findall(name.lower()):
        if w in _STOP:
            continue
        if len(w) > 3 and w.endswith("s") and not w.endswith("ss"):
            w = w[:-1]
        words.add(w)
    return frozenset(words)


def merge_topics(counts: dict[str, int], examples: dict[str, list[str]]) -> tuple[dict[str, int], dict[str, list[str]]]:
    """Merge topics whose content words overlap (one contains the other, or Jaccard >= 0.5) into the more frequent name."""
    order = sorted(counts, key=lambda n: (-counts[n], len(n), n))
    merged: dict[str, int] = {}
    merged_ex: dict[str, list[str]] = {}
    keys: dict[str, frozenset[str]] = {}
    for name in order:
        key = topic_key(name)
        if not key:
            continue
        target = None
        for kept, kept_key in keys.items():
            inter = len(key & kept_key)
            if inter and (key <= kept_key or kept_key <= key or inter / len(key | kept_key) >= 0.5):
                target = kept
                break
        if target is None:
            keys[name] = key
            merged[name] = counts[name]
            merged_ex[name] = list(examples.get(name, []))
        else:
            merged[target] += counts[name]
            merged_ex[target] = (merged_ex[target] + examples.get(name, []) + [name])[:6]
    return merged, merged_ex


def json_dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)
