"""The plugin manager: entry points in group ``curator``, allow and block lists.

Plugins load when the CLI or the registry first needs them, never when
``curator`` is imported. Switches:

* ``CURATOR_LOAD_PLUGINS=a,b`` loads only the named entry points
  (an empty value loads none);
* ``--disable-plugin NAME`` / ``CURATOR_DISABLE_PLUGINS=a,b`` blocks plugins;
* ``CURATOR_TRACE_PLUGINS=1`` prints every hook call to stderr.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from importlib.metadata import entry_points

import pluggy

from curator import hookspecs
from curator.registry import StepRegistry, build_registry

ENTRY_POINT_GROUP = "curator"


@dataclass
class PluginInfo:
    name: str
    distribution: str | None = None
    version: str | None = None
    module: str | None = None


@dataclass
class PluginState:
    pm: pluggy.PluginManager
    infos: dict[str, PluginInfo] = field(default_factory=dict)
    #: entry point name -> "ExceptionType: message" for plugins that failed to import
    failed: dict[str, str] = field(default_factory=dict)
    disabled: set[str] = field(default_factory=set)
    _registry: StepRegistry | None = None

    @property
    def registry(self) -> StepRegistry:
        if self._registry is None:
            self._registry = build_registry(self.pm)
        return self._registry


_state: PluginState | None = None
_disabled: set[str] = set()


def _env_list(name: str) -> list[str] | None:
    value = os.environ.get(name)
    if value is None:
        return None
    return [item.strip() for item in value.split(",") if item.strip()]


def disable_plugins(names: list[str] | tuple[str, ...]) -> None:
    """Block plugins by name before the plugin manager is first built."""
    _disabled.update(names)
    if _state is not None:
        for name in names:
            _block(_state, name)


def _block(state: PluginState, name: str) -> None:
    plugin = state.pm.get_plugin(name)
    state.pm.set_blocked(name)
    if plugin is not None:
        state.pm.unregister(name=name)
    state.disabled.add(name)
    state._registry = None


def new_plugin_manager(load_entrypoints: bool = True, disabled: set[str] | None = None) -> PluginState:
    """A fresh plugin manager with entry-point plugins loaded (tests use this too)."""
    pm = pluggy.PluginManager("curator")
    pm.add_hookspecs(hookspecs)
    state = PluginState(pm=pm)
    disabled = set(disabled or ()) | set(_env_list("CURATOR_DISABLE_PLUGINS") or ())
    for name in disabled:
        pm.set_blocked(name)
        state.disabled.add(name)
    if os.environ.get("CURATOR_TRACE_PLUGINS"):
        pm.trace.root.setwriter(lambda msg: sys.stderr.write(msg))
        pm.enable_tracing()
    if load_entrypoints:
        _load_entrypoints(state, _env_list("CURATOR_LOAD_PLUGINS"))
    pm.check_pending()
    return state


def _load_entrypoints(state: PluginState, allow: list[str] | None) -> None:
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if allow is not None and ep.name not in allow:
            continue
        if state.pm.is_blocked(ep.name) or state.pm.has_plugin(ep.name):
            continue
        try:
            plugin = ep.load()
        except Exception as exc:  # a broken plugin must not take the host down
            state.failed[ep.name] = f"{type(exc).__name__}: {exc}"
            continue
        state.pm.register(plugin, name=ep.name)
        dist = getattr(ep, "dist", None)
        state.infos[ep.name] = PluginInfo(
            name=ep.name,
            distribution=dist.metadata["Name"] if dist is not None else None,
            version=dist.version if dist is not None else None,
            module=ep.value,
        )


def get_state() -> PluginState:
    global _state
    if _state is None:
        _state = new_plugin_manager(disabled=_disabled)
    return _state


def get_plugin_manager() -> pluggy.PluginManager:
    return get_state().pm


def get_registry() -> StepRegistry:
    return get_state().registry


def reset() -> None:
    """Forget the loaded plugins (the next call loads them again)."""
    global _state
    _state = None
    _disabled.clear()


def register_plugin(plugin: object, name: str) -> None:
    """Register a plugin object at run time (for tests and notebooks)."""
    state = get_state()
    state.pm.register(plugin, name=name)
    state.pm.check_pending()
    state.infos[name] = PluginInfo(name=name, module=getattr(plugin, "__name__", repr(plugin)))
    state._registry = None


def unregister_plugin(name: str) -> None:
    state = get_state()
    state.pm.unregister(name=name)
    state.infos.pop(name, None)
    state._registry = None
