"""Step name -> step class, filled by the plugins' ``register_steps`` hooks."""

from __future__ import annotations

import difflib
import inspect
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pluggy

from curator.errors import ConfigError, PluginError
from curator.steps import FilterStep, FitStep, MapStep, Step


@dataclass(frozen=True)
class RegisteredStep:
    cls: type[Step]
    plugin: str


class StepRegistry:
    def __init__(self) -> None:
        self._steps: dict[str, RegisteredStep] = {}
        #: plugin name -> why it failed to load (set by curator.plugins)
        self.failed_plugins: dict[str, str] = {}

    def copy(self) -> StepRegistry:
        """A registry with the same steps, to add more to (curator.testing does)."""
        other = StepRegistry()
        other._steps = dict(self._steps)
        other.failed_plugins = dict(self.failed_plugins)
        return other

    def plugin_of(self, cls: type[Step]) -> str | None:
        """The plugin that registered ``cls``, if any did."""
        entry = self._steps.get(cls.name)
        return entry.plugin if entry is not None and entry.cls is cls else None

    def register(self, cls: type[Step], plugin: str) -> None:
        if not (inspect.isclass(cls) and issubclass(cls, (MapStep, FilterStep, FitStep))):
            raise PluginError(f"plugin {plugin!r} registered {cls!r}, which is not a MapStep, FilterStep or FitStep subclass")
        if not cls.name:
            raise PluginError(f"plugin {plugin!r} registered {cls.__qualname__} without a `name` class attribute")
        existing = self._steps.get(cls.name)
        if existing is not None and existing.cls is not cls:
            raise PluginError(
                f"step name {cls.name!r} is registered twice: by plugin {existing.plugin!r} "
                f"({existing.cls.__module__}.{existing.cls.__qualname__}) and by plugin {plugin!r} "
                f"({cls.__module__}.{cls.__qualname__}); disable one with --disable-plugin"
            )
        self._steps[cls.name] = RegisteredStep(cls, plugin)

    def get(self, name: str) -> type[Step]:
        return self.lookup(name).cls

    def lookup(self, name: str) -> RegisteredStep:
        try:
            return self._steps[name]
        except KeyError:
            raise ConfigError(f"unknown step {name!r}{self.suggest(name)}") from None

    def suggest(self, name: str) -> str:
        close = difflib.get_close_matches(name, self._steps, n=3, cutoff=0.5)
        failed = ""
        if self.failed_plugins:
            names = ", ".join(repr(n) for n in sorted(self.failed_plugins))
            failed = f" (plugin {names} failed to load: `curator plugins` says why)"
        if close:
            return "; did you mean " + " or ".join(repr(c) for c in close) + "?" + failed
        return f"; `curator steps` lists the {len(self._steps)} known steps" + failed

    def __contains__(self, name: object) -> bool:
        return name in self._steps

    def __iter__(self) -> Iterator[tuple[str, RegisteredStep]]:
        return iter(sorted(self._steps.items()))

    def __len__(self) -> int:
        return len(self._steps)


# frames in these folders are the host's, not the plugin's
_HOST_DIRS = (str(Path(__file__).resolve().parent) + "/", str(Path(pluggy.__file__).resolve().parent) + "/")


class _Register:
    """The ``register`` callback one plugin receives; its repr names the plugin in hook traces."""

    def __init__(self, registry: StepRegistry, plugin: str) -> None:
        self.registry = registry
        self.plugin = plugin

    def __call__(self, cls: type[Step]) -> None:
        self.registry.register(cls, self.plugin)

    def __repr__(self) -> str:
        return f"<register steps of plugin {self.plugin!r}>"


def build_registry(pm: pluggy.PluginManager) -> StepRegistry:
    """Call every plugin's ``register_steps`` with a callback that remembers the plugin."""
    registry = StepRegistry()
    impls = pm.hook.register_steps.get_hookimpls()
    # Calling each plugin on its own (rather than all at once through
    # pm.hook.register_steps) is what lets an error name the plugin. The call
    # still goes through pluggy, so CURATOR_TRACE_PLUGINS=1 traces it.
    for impl in reversed(impls):
        plugin_name = pm.get_name(impl.plugin) or repr(impl.plugin)
        others = [i.plugin for i in impls if i.plugin is not impl.plugin]
        try:
            pm.subset_hook_caller("register_steps", others)(register=_Register(registry, plugin_name))
        except PluginError:
            raise
        except Exception as exc:
            raise PluginError(
                f"plugin {plugin_name!r} raised {type(exc).__name__} in register_steps: {exc}{where_in_plugin(exc)}; fix the plugin, or run without it: --disable-plugin {plugin_name}"
            ) from exc
    return registry


def where_in_plugin(exc: BaseException) -> str:
    """`` at file.py:12 in fn``: the innermost frame of the traceback outside curator and pluggy, if any."""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename.startswith(_HOST_DIRS):
            continue
        return f" (at {Path(frame.filename).name}:{frame.lineno} in {frame.name})"
    return ""


def step_failure(registry: StepRegistry, step: Step, exc: BaseException, where: str) -> str:
    """One line for a step that raised in ``where`` (e.g. "fit"): plugin, step, error and what to do."""
    plugin = registry.plugin_of(type(step))
    who = f"plugin {plugin!r}, step {step.name!r}" if plugin else f"step {step.name!r}"
    if step.name != type(step).name:
        who += f" ({type(step).name})"
    message = (str(exc).strip().splitlines() or [""])[0][:300]
    return f"{who} raised {type(exc).__name__} in {where}(): {message}{where_in_plugin(exc)}; fix the step's {where}() (or its parameters), or remove it from the pipeline"


def name_plugins(registry: StepRegistry, steps: Sequence[Step], message: str) -> str:
    """Add the plugin to the first ``step 'x'`` a host error names, so its author knows it is theirs."""
    for step in steps:
        plugin = registry.plugin_of(type(step))
        mention = f"step {step.name!r}"
        if plugin and mention in message and f"plugin {plugin!r}" not in message:
            first, _, rest = message.replace(mention, f"{mention} (plugin {plugin!r})", 1).partition("\n")
            return f"{first}; fix the plugin (the step contract: docs/plugin-guide.md)" + (f"\n{rest}" if rest else "")
    return message
