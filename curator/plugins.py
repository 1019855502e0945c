"""The plugin manager: entry points in group ``curator``, allow and block lists.

Plugins load when the CLI or the registry first needs them, never when
``curator`` is imported. Switches:

* ``CURATOR_LOAD_PLUGINS=a,b`` loads only the named entry points
  (an empty value loads none);
* ``--disable-plugin NAME`` / ``CURATOR_DISABLE_PLUGINS=a,b`` blocks plugins;
* ``CURATOR_TRACE_PLUGINS=1`` prints every hook call to stderr, each
  plugin's ``register_steps`` included.

A plugin that cannot be used (it fails to import, or implements a hook that
does not exist, e.g. ``register_step``) is listed as failed by
``curator plugins``, with one line saying what to fix; the others still load.
"""

from __future__ import annotations

import difflib
import os
import sys
from dataclasses import dataclass, field
from importlib.metadata import entry_points

import pluggy

from curator import hookspecs
from curator.errors import PluginError
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
            # so "unknown step" can say that the plugin which had it failed to load
            self._registry.failed_plugins = dict(self.failed)
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
    if tracing():
        pm.trace.root.setwriter(lambda msg: sys.stderr.write(msg))
        pm.enable_tracing()
    if load_entrypoints:
        _load_entrypoints(state, _env_list("CURATOR_LOAD_PLUGINS"))
    return state


def tracing() -> bool:
    return os.environ.get("CURATOR_TRACE_PLUGINS", "") not in ("", "0")


def unknown_hooks(pm: pluggy.PluginManager, plugin: object, name: str) -> str | None:
    """One line for a plugin implementing hooks curator does not have (a typo), else None.

    pluggy's ``check_pending`` raises for the first such hook of any plugin,
    which would take every plugin down with it; this names the plugin and
    the hook it probably meant.
    """
    known = sorted(n for n in vars(pm.hook) if not n.startswith("_") and getattr(pm.hook, n).has_spec())
    problems = []
    for caller in pm.get_hookcallers(plugin) or []:
        if caller.has_spec() or all(impl.optionalhook for impl in caller.get_hookimpls() if impl.plugin is plugin):
            continue
        close = difflib.get_close_matches(caller.name, known, n=1, cutoff=0.6)
        problems.append(f"unknown hook {caller.name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    if not problems:
        return None
    return f"plugin {name!r}: {', '.join(problems)}; rename the @hookimpl function to one of {', '.join(known)} (docs/plugin-hooks.md)"


def _register(state: PluginState, plugin: object, name: str) -> str | None:
    """Register ``plugin``; on a bad hook unregister it again and return why."""
    try:
        state.pm.register(plugin, name=name)
    except pluggy.PluginValidationError as exc:  # e.g. a hook with an argument the spec does not have
        return f"plugin {name!r}: {exc}; see the hook's signature in docs/plugin-hooks.md"
    problem = unknown_hooks(state.pm, plugin, name)
    if problem:
        state.pm.unregister(name=name)
    elif tracing():
        sys.stderr.write(f"curator: registered plugin {name!r} ({getattr(plugin, '__name__', type(plugin).__name__)})\n")
    return problem


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
        problem = _register(state, plugin, ep.name)
        if problem:
            state.failed[ep.name] = problem
            continue
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
    problem = _register(state, plugin, name)
    if problem:
        raise PluginError(problem)
    state.infos[name] = PluginInfo(name=name, module=getattr(plugin, "__name__", repr(plugin)))
    state._registry = None


def unregister_plugin(name: str) -> None:
    state = get_state()
    state.pm.unregister(name=name)
    state.infos.pop(name, None)
    state._registry = None
