"""Findings as data (what the JSON report and xdist carry) and as text (what a person reads).

The text is built from the plain-data form, so a controller process that only received the data
from a pytest-xdist worker prints the same report as a serial run.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .checker import Findings, LeakGroup
from .roots import HINTS

SCHEMA_VERSION = 1
MAX_GROUPS_SHOWN = 5
MAX_PATH_LINES = 14
MAX_PATHS_PER_GROUP = 2


def group_data(group: LeakGroup) -> dict[str, Any]:
    return {
        "type": group.type,
        "count": group.count,
        "root": group.kind,
        "verdict": group.verdict,
        "root_description": group.root,
        "path": list(group.path),
        "other_paths": [list(r.path) for r in group.retentions[1:]],
        "untraced": group.untraced,
    }


def findings_data(findings: Findings) -> dict[str, Any]:
    return {
        "verdict": findings.verdict,
        "leaks": [group_data(g) for g in findings.groups],
        "snapshot": findings.mode,
        "settle_seconds": round(findings.settle_seconds, 4),
        "check_seconds": round(findings.check_seconds, 4),
    }


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def verdict_line(data: Mapping[str, Any]) -> str:
    leaks = [g for g in data["leaks"] if g["verdict"] == "leak"]
    shown = leaks or list(data["leaks"])
    total = sum(g["count"] for g in shown)
    kinds = sorted({g["root"] for g in shown})
    what = "leaked" if leaks else "left (suspect)"
    types = sorted({g["type"].rpartition(".")[2] for g in shown})
    return f"{what} {_plural(total, 'object')} of {', '.join(types)}, held by {', '.join(kinds)}"


def _bounded_path(path: Sequence[str]) -> list[str]:
    if len(path) <= MAX_PATH_LINES:
        return list(path)
    head = MAX_PATH_LINES // 2
    tail = MAX_PATH_LINES - head - 1
    return [*path[:head], f"... {len(path) - head - tail} more steps ...", *path[-tail:]]


def format_group(group: Mapping[str, Any]) -> list[str]:
    label = "LEAK" if group["verdict"] == "leak" else "suspect"
    lines = [
        f"{label}: {group['count']} x {group['type']} held by {group['root']}: "
        f"{group['root_description']}",
    ]
    paths = [group["path"], *group.get("other_paths", [])][:MAX_PATHS_PER_GROUP]
    for n, path in enumerate(paths):
        if n:
            lines.append("  another path:")
        lines.extend(f"    {step}" for step in _bounded_path(path))
    hidden = len(group.get("other_paths", [])) + 1 - len(paths)
    if hidden > 0:
        lines.append(f"  ({hidden} more distinct paths not shown)")
    if group.get("untraced"):
        lines.append(f"  ({group['untraced']} more of this type not traced)")
    hint = HINTS.get(group["root"])
    if hint:
        lines.append(f"  hint: {hint}")
    return lines


def format_findings(data: Mapping[str, Any]) -> str:
    groups = list(data["leaks"])
    lines = [f"leakcheck: {verdict_line(data)}", ""]
    for group in groups[:MAX_GROUPS_SHOWN]:
        lines.extend(format_group(group))
        lines.append("")
    if len(groups) > MAX_GROUPS_SHOWN:
        lines.append(f"... and {len(groups) - MAX_GROUPS_SHOWN} more groups (see the JSON report)")
    if data.get("settle_seconds", 0) >= 0.001:
        waited = data["settle_seconds"] * 1000
        lines.append(f"(waited {waited:.0f} ms for threads started by the test to finish)")
    return "\n".join(lines).rstrip() + "\n"


def summary_lines(entries: Iterable[Mapping[str, Any]], limit: int = 20) -> list[str]:
    out: list[str] = []
    items = list(entries)
    for entry in items[:limit]:
        parts = [f"{g['count']} x {g['type']} ({g['root']})" for g in entry["leaks"]]
        out.append(f"{entry['verdict'].upper()} {entry['nodeid']}: {'; '.join(parts)}")
    if len(items) > limit:
        out.append(f"... and {len(items) - limit} more tests (see the JSON report)")
    return out


def write_json(path: str, entries: Iterable[Mapping[str, Any]], extra: Mapping[str, Any]) -> None:
    tests = [dict(e) for e in entries]
    doc = {"version": SCHEMA_VERSION, **extra, "tests": tests}
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=2, sort_keys=False)
        fh.write("\n")
