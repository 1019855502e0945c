"""Meta-tests (as datasette does): every hook is documented and has a test."""

from __future__ import annotations

import inspect
from pathlib import Path

from curator import hookspecs

REPO = Path(__file__).resolve().parents[1]
HOOKS = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if hasattr(fn, "curator_spec")]


def test_hooks_are_found():
    assert set(HOOKS) == {"register_steps", "register_commands", "prepare_duckdb"}


def test_every_hook_is_documented_with_its_signature():
    docs = (REPO / "docs" / "plugin-hooks.md").read_text()
    for name in HOOKS:
        params = ", ".join(inspect.signature(getattr(hookspecs, name)).parameters)
        assert f"## {name}({params})" in docs, f"docs/plugin-hooks.md lacks a section for {name}({params})"


def test_every_hook_has_a_test():
    tests = "\n".join(p.read_text() for p in (REPO / "tests").glob("test_*.py") if p.name != "test_hook_docs.py")
    for name in HOOKS:
        assert f"def {name}(" in tests, f"no test implements the {name} hook"
