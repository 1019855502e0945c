"""datatrove's heuristic filters as curator steps (Gopher, C4, FineWeb quality).

Each datatrove filter class becomes a step whose parameters are read from the
class's own ``__init__`` signature, so users set the same options with the
same defaults as in datatrove. datatrove's reject reasons (``gopher_short_doc``,
``line_punct_ratio``, ...) become ``reject_reason``.

``impl: curator`` (the default) runs the columnar rules of plugins/heuristics.py:
the same rules, parameters and reasons, with spaCy asked once per distinct
word chunk instead of once per document (7-27x faster per core; the same
decisions and reasons on all 11,589 documents compared, see docs/benchmarks.md). ``impl: datatrove`` runs datatrove's own
class per document, for bit-identical behaviour. Settings the columnar rules do
not cover (a language other than English, C4 with ``split_paragraph: false``)
run datatrove's class whatever ``impl`` says.

Left out because they download at run time (nothing may, here): LanguageFilter
(fastText lid model from the hub), C4BadWordsFilter (word lists from GitHub),
UnigramLogProbFilter (word frequencies). C4QualityFilter may also rewrite text
(it drops lines); curator keeps the original text and uses only its verdict.
"""

from __future__ import annotations

import importlib
import inspect
import typing
from typing import Any, Literal

import pyarrow as pa
from pydantic import ConfigDict, create_model

from curator import FilterResult, FilterStep, Params, hookimpl

# step name -> (datatrove class path, description)
FILTERS = {
    "gopher_quality": ("datatrove.pipeline.filters.GopherQualityFilter", "Gopher quality rules: word counts, symbol ratios, stop words"),
    "gopher_repetition": ("datatrove.pipeline.filters.GopherRepetitionFilter", "Gopher repetition rules: duplicated lines, paragraphs, n-grams"),
    "c4_quality": ("datatrove.pipeline.filters.C4QualityFilter", "C4 rules: terminal punctuation, sentences, javascript, policy, lorem ipsum"),
    "fineweb_quality": ("datatrove.pipeline.filters.FineWebQualityFilter", "FineWeb rules: line punctuation, short lines, duplicated chars, list ratio"),
}
SKIPPED_PARAMS = {"self", "exclusion_writer"}
IMPL_FIELD: Any = (Literal["curator", "datatrove"], "curator")
# the columnar rules tokenise like spaCy English, what datatrove uses for these codes
ENGLISH = {"en", "eng", "eng_Latn"}


def _params_model(step_name: str, init: Any) -> type[Params]:
    fields: dict[str, Any] = {}
    for param in inspect.signature(init).parameters.values():
        if param.name in SKIPPED_PARAMS or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        annotation = param.annotation if param.annotation is not inspect.Parameter.empty else Any
        if isinstance(annotation, str) or typing.get_origin(annotation) is tuple:
            # datatrove's tuple annotations are looser than its values (top_n_grams)
            annotation = Any
        fields[param.name] = (annotation, param.default if param.default is not inspect.Parameter.empty else ...)
    fields["impl"] = IMPL_FIELD
    return create_model(f"{step_name}_params", __base__=Params, __module__=__name__, **fields)


class DatatroveFilter(FilterStep):
    """Adapter: datatrove's rules over a batch, columnar (``impl: curator``) or datatrove's class per document."""

    requires = {"datatrove": "datatrove[processing]", "spacy": "spacy"}
    datatrove_class: str = ""

    def _datatrove_params(self) -> dict[str, Any]:
        return {k: v for k, v in self.params.model_dump().items() if k != "impl"}

    def _columnar(self) -> Any:
        """The columnar implementation, or None when the settings need datatrove's class."""
        params = self._datatrove_params()
        if getattr(self.params, "impl", "curator") != "curator" or params.get("language", "en") not in ENGLISH:
            return None
        if type(self).name == "c4_quality" and not params.get("split_paragraph", True):
            return None
        from curator_plugins import heuristics

        return heuristics.IMPLEMENTATIONS[type(self).name]

    def setup(self) -> None:
        self._fast = self._columnar()
        if self._fast is not None:
            return
        module, _, cls_name = self.datatrove_class.rpartition(".")
        cls = getattr(importlib.import_module(module), cls_name)
        self._filter = cls(**self._datatrove_params())
        from datatrove.data import Document

        self._document = Document

    def filter(self, batch: pa.Table) -> FilterResult:
        if not hasattr(self, "_fast"):
            self.setup()
        if self._fast is not None:
            return FilterResult(*self._fast(batch.column("text").to_pylist(), batch.column("id").to_pylist(), **self._datatrove_params()))
        Document = self._document
        keep: list[bool] = []
        reasons: list[str | None] = []
        for doc_id, text in zip(batch.column("id").to_pylist(), batch.column("text").to_pylist()):
            verdict = self._filter.filter(Document(text=text, id=doc_id, metadata={}))
            if isinstance(verdict, tuple):
                keep.append(bool(verdict[0]))
                reasons.append(verdict[1])
            else:
                keep.append(bool(verdict))
                reasons.append(None)
        return FilterResult(keep, reasons)


class _AnyParams(Params):
    """Without datatrove the options are unknown: accept any, so the error users see names the package to install.
    (Setting model_config on a model after it is built has no effect in pydantic 2, hence a class.)"""

    model_config = ConfigDict(extra="allow")


def _make_step(step_name: str, class_path: str, description: str) -> type[DatatroveFilter]:
    module, _, cls_name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), cls_name)
    except ImportError:
        # datatrove not installed: register a step that says what to install
        params: type[Params] = _AnyParams
    else:
        params = _params_model(step_name, cls.__init__)
    return type(
        f"{cls_name}Step",
        (DatatroveFilter,),
        {
            "name": step_name,
            "description": f"{description} (datatrove {cls_name}'s rules, columnar; impl: datatrove runs its class)",
            "Params": params,
            "datatrove_class": class_path,
            "__module__": __name__,
        },
    )


STEPS = [_make_step(name, path, desc) for name, (path, desc) in FILTERS.items()]
# Pickling (to worker processes and Ray actors) needs the generated classes
# to be attributes of this module.
for _cls in STEPS:
    globals()[_cls.__name__] = _cls
    globals()[_cls.Params.__name__] = _cls.Params


@hookimpl
def register_steps(register):
    for cls in STEPS:
        register(cls)
