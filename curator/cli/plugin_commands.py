"""curator plugins / curator steps"""

from __future__ import annotations

import json

import click

from curator import plugins


def plugin_rows() -> list[dict]:
    state = plugins.get_state()
    rows = []
    for name, plugin in state.pm.list_name_plugin():
        info = state.infos.get(name)
        hooks = sorted(h.name for h in state.pm.get_hookcallers(plugin) or [])
        rows.append(
            {
                "name": name,
                "distribution": info.distribution if info else None,
                "version": info.version if info else None,
                "module": info.module if info else getattr(plugin, "__name__", None),
                "hooks": hooks,
            }
        )
    for name, error in state.failed.items():
        rows.append({"name": name, "error": error, "hooks": []})
    for name in sorted(state.disabled):
        rows.append({"name": name, "disabled": True, "hooks": []})
    return sorted(rows, key=lambda r: r["name"])


def _type_name(annotation: object) -> str:
    if annotation is None:
        return "None"
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


_BOUNDS = {"gt": ">", "ge": ">=", "lt": "<", "le": "<=", "multiple_of": "multiple of", "min_length": "length >=", "max_length": "length <="}


def _constraints(field: object) -> list[str]:
    """A field's bounds as written by users, e.g. [">= 0", "<= 100"] (pydantic keeps them in ``metadata``)."""
    out = []
    for item in getattr(field, "metadata", []):
        for attr, symbol in _BOUNDS.items():
            value = getattr(item, attr, None)
            if value is not None:
                out.append(f"{symbol} {value}")
    extra = getattr(field, "json_schema_extra", None)
    if isinstance(extra, dict) and extra.get("path"):
        out.append("a path (relative to the pipeline file)")
    return out


def step_rows() -> list[dict]:
    rows = []
    for name, entry in plugins.get_registry():
        params = []
        for field_name, field in entry.cls.Params.model_fields.items():
            default = None if field.is_required() else field.get_default(call_default_factory=True)
            params.append(
                {
                    "name": field_name,
                    "type": _type_name(field.annotation),
                    "required": field.is_required(),
                    "default": default if isinstance(default, (int, float, str, bool, type(None), list, tuple)) else repr(default),
                    "description": field.description or "",
                    "constraints": _constraints(field),
                }
            )
        rows.append(
            {
                "name": name,
                "kind": entry.cls.kind,
                "plugin": entry.plugin,
                "description": entry.cls.description or (entry.cls.__doc__ or "").strip().split("\n")[0],
                "parameters": params,
                "missing_dependencies": entry.cls.missing_dependencies(),
            }
        )
    return rows


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True)
def plugins_command(as_json: bool) -> None:
    """Installed plugins: distribution, version, hooks; failures by name."""
    rows = plugin_rows()
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    for row in rows:
        if row.get("error"):
            click.secho(f"{row['name']}: FAILED TO LOAD: {row['error']}", fg="red")
        elif row.get("disabled"):
            click.echo(f"{row['name']}: disabled")
        else:
            dist = f"{row['distribution']} {row['version']}" if row.get("distribution") else row.get("module") or ""
            click.echo(f"{row['name']}  ({dist})  hooks: {', '.join(row['hooks'])}")


@click.command("steps")
@click.option("--json", "as_json", is_flag=True)
def steps_command(as_json: bool) -> None:
    """Every step: name, kind, plugin, parameters with types and defaults."""
    rows = step_rows()
    if as_json:
        click.echo(json.dumps(rows, indent=1, default=str))
        return
    for row in rows:
        missing = f"  [missing: {', '.join(row['missing_dependencies'])}]" if row["missing_dependencies"] else ""
        click.echo(f"{row['name']}  ({row['kind']}, plugin {row['plugin']}){missing}")
        if row["description"]:
            click.echo(f"    {row['description']}")
        for p in row["parameters"]:
            default = "required" if p["required"] else f"default {p['default']!r}"
            bounds = "".join(f", {c}" for c in p["constraints"])
            about = f": {p['description']}" if p["description"] else ""
            click.echo(f"    {p['name']}: {p['type']} ({default}{bounds}){about}")


@click.command("new-plugin")
@click.argument("name")
@click.option("--kind", type=click.Choice(["filter", "map", "fit"]), default="filter", show_default=True, help="The kind of step the plugin starts with.")
@click.option("--dir", "directory", type=click.Path(file_okay=False), default=None, help="Folder to create (default: ./curator-NAME).")
def new_plugin_command(name: str, kind: str, directory: str | None) -> None:
    """Scaffold a pip-installable plugin package NAME with one working step.

    It holds pyproject.toml (the `curator` entry point), the step module, a
    test using curator.testing, a README and an example pipeline.
    """
    from curator.scaffold import ScaffoldError, create, names_for

    names = names_for(name, kind)
    registry = plugins.get_registry()
    if names.step in registry:
        raise ScaffoldError(f"a step named {names.step!r} already exists (plugin {registry.lookup(names.step).plugin!r}): pick another NAME, or the two plugins could not be installed together")
    target = create(name, kind, directory)
    click.echo(f"created {target}/ with the {kind} step {names.step!r} (plugin {names.step!r}, module {names.module}.py)")
    click.echo(f"next: cd {target} && pip install -e '.[test]' && pytest && curator steps")
