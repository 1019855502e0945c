"""A worked example of a curator plugin: one filter step, one CLI command, one SQL macro.

Install it with ``pip install ./docs/example-plugin`` and it shows up in
``curator plugins`` and ``curator steps``, and runs in pipelines on both
executors.
"""

from __future__ import annotations

import re

import click
from pydantic import Field

from curator import Document, DocumentFilter, Params, hookimpl


class BannedWordsFilter(DocumentFilter):
    """Rejects documents that contain any of the given words (whole words, any case)."""

    name = "banned_words"
    description = "reject documents containing any listed word"

    class Params(Params):
        words: list[str] = Field(description="words that make a document rejected")
        max_hits: int = Field(0, ge=0, description="how many hits are tolerated")

    def setup(self) -> None:
        # Compiled once per worker, not in __init__: steps are pickled to workers.
        pattern = "|".join(re.escape(w) for w in self.params.words)
        self._regex = re.compile(rf"\b({pattern})\b", re.IGNORECASE)

    def keep(self, doc: Document) -> bool | tuple[bool, str]:
        hits = self._regex.findall(doc.text)
        if len(hits) > self.params.max_hits:
            return False, f"banned_word:{hits[0].lower()}"
        return True


@hookimpl
def register_steps(register):
    register(BannedWordsFilter)


@hookimpl
def register_commands(cli):
    @cli.command(name="example-banned")
    @click.argument("text")
    @click.option("--word", "words", multiple=True, required=True)
    def example_banned(text, words):
        """Check TEXT against banned words (from the example plugin)."""
        step = BannedWordsFilter(words=list(words))
        step.setup()
        click.echo(step.keep(Document(id="cli", text=text)))


@hookimpl
def prepare_duckdb(connection, run_dir):
    # A macro every `curator sql` query can use: word_count(text).
    connection.execute("CREATE OR REPLACE TEMP MACRO word_count(t) AS len(string_split_regex(trim(t), '\\s+'))")
