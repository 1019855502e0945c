"""Step name -> step class, filled by the plugins' ``register_steps`` hooks."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Iterator
from dataclasses import dataclass

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
        if close:
            return "; did you mean " + " or ".join(repr(c) for c in close) + "?"
        return f"; `curator steps` lists the {len(self._steps)} known steps"

    def __contains__(self, name: object) -> bool:
        return name in self._steps

    def __iter__(self) -> Iterator[tuple[str, RegisteredStep]]:
        return iter(sorted(self._steps.items()))

    def __len__(self) -> int:
        return len(self._steps)


def build_registry(pm: pluggy.PluginManager) -> StepRegistry:
    """Call every plugin's ``register_steps`` with a callback that remembers the plugin."""
    registry = StepRegistry()
    # Calling each implementation on its own (rather than pm.hook.register_steps)
    # is what lets a duplicate-name error name both plugins.
    for impl in reversed(pm.hook.register_steps.get_hookimpls()):
        plugin_name = pm.get_name(impl.plugin) or repr(impl.plugin)

        def register(cls: type[Step], _plugin: str = plugin_name) -> None:
            registry.register(cls, _plugin)

        impl.function(register=register)
    return registry
