"""Per-run statistics: the funnel from input to kept, per step and reason."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from curator.catalog import read_manifest


def collect(run_dir: Path) -> dict[str, Any]:
    """Aggregate the per-shard markers of every pass into one funnel."""
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    passes = manifest.get("passes", [])
    rejected: dict[str, Counter[str]] = defaultdict(Counter)
    errors: dict[str, list[str]] = defaultdict(list)
    seconds: defaultdict[str, float] = defaultdict(float)
    unreadable: list[dict[str, Any]] = []
    warnings: list[str] = []
    n_input = kept = 0
    shards_done = shards_total = 0
    for index, p in enumerate(passes):
        markers = sorted((run_dir / p["dir"] / "_done").glob("*.json"))
        shards_done += len(markers)
        shards_total += p.get("shards", len(markers))
        pass_kept = 0
        for marker in markers:
            stats = json.loads(marker.read_text())
            if index == 0:
                n_input += stats["input"]
                unreadable.extend(stats.get("unreadable", []))
                warnings.extend(stats.get("warnings", []))
            pass_kept += stats["kept"]
            for step, counts in stats["rejected"].items():
                rejected[step].update(counts)
            for step, msgs in stats.get("errors", {}).items():
                errors[step].extend(msgs)
            for step, spent in stats.get("step_seconds", {}).items():
                seconds[step] += spent  # summed over units
        kept = pass_kept
    order = ["read"] + [s["name"] for s in manifest.get("steps", [])]
    funnel = []
    remaining = n_input
    for name in order:
        step = next((s for s in manifest.get("steps", []) if s["name"] == name), {"name": "read", "type": "read", "kind": "read"})
        reasons = dict(rejected.get(name, Counter()))
        n_rejected = sum(reasons.values())
        if name == "read" and not n_rejected:
            continue
        funnel.append(
            {
                "step": name,
                "type": step["type"],
                "kind": step["kind"],
                "input": remaining if step["kind"] != "fit" else None,
                "rejected": n_rejected,
                "reasons": dict(sorted(reasons.items(), key=lambda kv: -kv[1])),
                "seconds": round(seconds.get(name, 0.0), 3),
                "result": _fit_result(run_dir, name) if step["kind"] == "fit" else None,
            }
        )
        remaining -= n_rejected
        fit_result = funnel[-1]["result"]
        if isinstance(fit_result, dict) and isinstance(fit_result.get("warnings"), list):
            # a fit step that trained something useless says so here, in `curator stats` and the report
            warnings.extend(str(w) for w in fit_result["warnings"])
    total_rejected = sum(sum(r.values()) for r in rejected.values())
    return {
        "run": str(run_dir),
        "pipeline": manifest.get("pipeline"),
        "status": manifest.get("status"),
        "input": n_input,
        "kept": kept,
        "rejected": total_rejected,
        "balanced": n_input == kept + total_rejected,
        "shards": {"done": shards_done, "total": shards_total},
        "funnel": funnel,
        "errors": {k: v[:5] for k, v in errors.items()},
        "unreadable": unreadable,
        "warnings": warnings,
        "artifacts": manifest.get("artifacts", {}),
    }


def _fit_result(run_dir: Path, name: str) -> Any:
    path = run_dir / "artifacts" / name / "result.json"
    if not path.exists():
        return None
    return json.loads(path.read_text()).get("result")


def format_funnel(stats: dict[str, Any]) -> str:
    """The funnel as a small text table, for the end of `curator run` and `curator stats`."""
    lines = [f"run {stats['run']}  pipeline {stats['pipeline']}  status {stats['status']}"]
    width = max([len(f["step"]) for f in stats["funnel"]] + [8])
    lines.append(f"  {'input':<{width}}  {stats['input']:>10,}")
    for f in stats["funnel"]:
        if f["kind"] == "fit":
            result = f["result"] or {}
            # numbers first (roc_auc, threshold, ...), then short strings; nested values stay in --json
            scalars = sorted(((k, v) for k, v in result.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)), key=lambda kv: isinstance(kv[1], str))
            shown = ", ".join(f"{k}={_short(v)}" for k, v in scalars[:5])
            lines.append(f"  {f['step']:<{width}}  {'(fit)':>10}  {shown}")
            continue
        reasons = ", ".join(f"{k} {v:,}" for k, v in list(f["reasons"].items())[:6])
        lines.append(f"  {f['step']:<{width}}  {-f['rejected']:>10,}  {f['seconds']:>7.2f}s  {reasons}")
    pct = 100.0 * stats["kept"] / stats["input"] if stats["input"] else 0.0
    lines.append(f"  {'kept':<{width}}  {stats['kept']:>10,}  ({pct:.1f}% of input)")
    check = "ok" if stats["balanced"] else "MISMATCH"
    lines.append(f"  kept + rejected = {stats['kept'] + stats['rejected']:,} = input {stats['input']:,}: {check}")
    for item in stats["unreadable"]:
        rows = f" ({item['rows']} rows)" if item.get("rows") else ""
        lines.append(f"  unreadable, set aside: {item['source']}{rows}: {item['problem']}")
    duplicates = stats.get("duplicate_ids") or {}
    if duplicates.get("count"):
        lines.append(f"  warning: {duplicates['count']:,} ids appear in more than one input file, e.g. {', '.join(duplicates['examples'])}")
    for warning in stats["warnings"][:10]:
        lines.append(f"  warning: {warning}")
    for step, msgs in stats["errors"].items():
        lines.append(f"  step {step} raised on some rows, e.g. {msgs[0]}")
    return "\n".join(lines)


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    text = str(value)
    return text if len(text) < 40 else text[:37] + "..."
