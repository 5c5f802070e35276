"""Findings as data (what the JSON report and xdist carry) and as text (what a person reads).

The text is built from the plain-data form, so a controller process that only received the data
from a pytest-xdist worker prints the same report as a serial run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from . import kinds
from .cycles import sparkline
from .files import write_atomic
from .findings import Findings, Heap, LeakGroup, Proof
from .kinds import PENDING_LEAK_KINDS

SCHEMA_VERSION = 1
MAX_GROUPS_SHOWN = 5
MAX_PATH_LINES = 14
MAX_PATHS_PER_GROUP = 2
MAX_PENDING_SHOWN = 10


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if abs(size) < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def root_word(group: Mapping[str, Any]) -> str:
    """The root kind of a group's data, or "not walked" for a group counted without a search."""
    root = group.get("root")
    return root if isinstance(root, str) else "not walked"


def group_data(group: LeakGroup) -> dict[str, Any]:
    not_walked = group.retentions[0].not_walked if group.retentions else None
    return {
        "type": group.type,
        "count": group.count,
        # A group counted without a search has no root kind: not even "unknown", which is the
        # kind of a root that a search found and could not name.
        "root": None if not_walked else group.kind,
        "verdict": group.verdict,
        "root_description": group.root,
        "path": list(group.path),
        "other_paths": [list(r.path) for r in group.retentions[1:]],
        "untraced": group.untraced,
        "retained_bytes": group.retained_bytes,
        "retained_complete": group.retained_complete,
        "per_run": list(group.per_run),
        "created": group.created,
        "retained_within": group.retained_within,
        "root_created": group.root_created,
        # Named by the test with leakcheck.expect_released(why=...): why, and where it said so.
        "expected": group.expected,
        "expected_at": group.expected_at,
        # Counted without a search, and why ("budget" or "repeat"); null when walked.
        "not_walked": not_walked,
    }


def heap_data(heap: Heap | None) -> dict[str, Any] | None:
    if heap is None:
        return None
    return {
        "objects_added": heap.objects_added,
        "rss_before_bytes": heap.rss_before,
        "rss_after_bytes": heap.rss_after,
        "traced_growth_bytes": heap.traced_growth,
        "max_growth_bytes": heap.max_growth,
    }


def findings_data(findings: Findings) -> dict[str, Any]:
    return {
        "verdict": findings.verdict,
        "leaks": [group_data(g) for g in findings.groups],
        "heap": heap_data(findings.heap),
        "heap_leak": findings.heap_leak,
        "cycles": findings.cycles.data() if findings.cycles is not None else None,
        "pending": [
            {
                "kind": p.kind,
                "description": p.description,
                "verdict": p.verdict,
                "created": p.created,
            }
            for p in findings.pending
        ],
        "proof": list(findings.proof),
        # What all the survivors retain together: each byte once, nested groups included.
        "retained_bytes": findings.retained_bytes,
        "retained_complete": findings.retained_complete,
        # What earlier tests left running (and what of this test's objects it held), found and
        # stopped during this check: never this test's verdict.
        "leftovers": [
            {"kind": p.kind, "description": p.description, "made_by": p.made_by}
            for p in findings.leftovers
        ],
        "held_by_leftovers": [group_data(g) for g in findings.held_by_leftovers],
        "traced": findings.traced,
        "snapshot": findings.mode,
        "no_frozen_window": findings.no_frozen_window or None,
        "settle_seconds": round(findings.settle_seconds, 4),
        "check_seconds": round(findings.check_seconds, 4),
    }


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def verdict_line(data: Mapping[str, Any]) -> str:
    leaks = [g for g in data["leaks"] if g["verdict"] == "leak"]
    shown = leaks or list(data["leaks"])
    if not shown:
        running = [p for p in data.get("pending", []) if p["verdict"] == "leak"]
        listed = running or list(data.get("pending", []))
        if listed:
            names = ", ".join(sorted({p["kind"] for p in listed}))
            if running:
                what = "left running"
            elif any(p["kind"] in PENDING_LEAK_KINDS for p in listed):
                what = "left running (suspect)"
            else:
                what = "changed (suspect)"
            return f"{what}: {len(listed)} x {names}"
        return _heap_verdict(data)
    total = sum(g["count"] for g in shown)
    kinds = sorted({root_word(g) for g in shown})
    what = "leaked" if leaks else "left (suspect)"
    types = sorted({g["type"].rpartition(".")[2] for g in shown})
    line = f"{what} {_plural(total, 'object')} of {', '.join(types)}, held by {', '.join(kinds)}"
    size = data.get("retained_bytes")
    if size is not None and leaks:
        at_least = "" if data.get("retained_complete", True) else "at least "
        line += f", retaining {at_least}{human_size(size)}"
    return line


def _bounded_path(path: Sequence[str]) -> list[str]:
    if len(path) <= MAX_PATH_LINES:
        return list(path)
    head = MAX_PATH_LINES // 2
    tail = MAX_PATH_LINES - head - 1
    return [*path[:head], f"... {len(path) - head - tail} more steps ...", *path[-tail:]]


def _heap_verdict(data: Mapping[str, Any]) -> str:
    heap = data.get("heap") or {}
    growth = heap.get("traced_growth_bytes")
    limit = heap.get("max_growth_bytes")
    if limit is not None and growth is not None and growth > limit:
        return f"the heap grew by {human_size(growth)} (limit {human_size(limit)})"
    cycles = data.get("cycles") or {}
    if cycles.get("heap_grows"):
        per_run = ", ".join(human_size(d) for d in cycles.get("heap_per_run") or [])
        return f"the heap grew in every counted run: [{per_run}]"
    return "nothing leaked"


def _retaining(group: Mapping[str, Any]) -> str:
    """What a group retains, once: a group that another group retains is said to be part of it."""
    within = group.get("retained_within")
    if within:
        return f", part of what the {within.rpartition('.')[2]} objects retain,"
    size = group.get("retained_bytes")
    if size is None:
        return ""
    at_least = "" if group.get("retained_complete", True) else "at least "
    return f", retaining {at_least}{human_size(size)},"


# How a root came to be, by kind, for the line that says where.
_MADE = {
    "threading.Timer": "started",
    "threading.Thread": "started",
    "asyncio.Task": "created",
    "asyncio.TimerHandle": "scheduled",
    "asyncio.Handle": "scheduled",
    "sched.Event": "scheduled",
    "atexit": "registered",
    "signal handler": "set",
}

_LABELS = {"leak": "LEAK", "suspect": "suspect", "known": "known (in the baseline)"}


def format_group(group: Mapping[str, Any]) -> list[str]:
    label = _LABELS.get(group["verdict"], group["verdict"])
    lines = [
        f"{label}: {group['count']} x {group['type']}{_retaining(group)} held by "
        f"{root_word(group)}: {group['root_description']}",
    ]
    if group.get("expected") is not None:
        why = f": {group['expected']}" if group["expected"] else ""
        at = f" (said at {group['expected_at']})" if group.get("expected_at") else ""
        lines.append(f"  expected to be released{why}{at}")
    if group.get("root_created"):
        verb = _MADE.get(group["root"], "made")
        lines.append(f"  the {group['root']} was {verb} at {group['root_created']}")
    if group.get("created"):
        lines.append(f"  {group['type'].rpartition('.')[2]} created at {group['created']}")
    if group.get("per_run"):
        lines.append(f"  +{group['per_run'][0]} per run: {group['per_run']}")
    paths = [group["path"], *group.get("other_paths", [])][:MAX_PATHS_PER_GROUP]
    for n, path in enumerate(paths):
        if n:
            lines.append("  another path:")
        lines.extend(f"    {step}" for step in _bounded_path(path))
    hidden = len(group.get("other_paths", [])) + 1 - len(paths)
    if hidden > 0:
        lines.append(f"  ({_plural(hidden, 'more distinct path')} not shown)")
    if group.get("untraced"):
        lines.append(f"  ({group['untraced']} more of this type not traced)")
    hint = kinds.hint(group["root"], group.get("root_description") or "")
    if hint:
        lines.append(f"  hint: {hint}")
    return lines


def format_heap(data: Mapping[str, Any]) -> list[str]:
    heap = data.get("heap")
    if not heap:
        return []
    line = f"heap: {heap['objects_added']:+,} tracked objects"
    before, after = heap.get("rss_before_bytes"), heap.get("rss_after_bytes")
    if before is not None and after is not None:
        line += f"; resident memory {human_size(before)} -> {human_size(after)}"
    if heap.get("traced_growth_bytes") is not None:
        line += f"; {human_size(heap['traced_growth_bytes'])} allocated and kept"
        if heap.get("max_growth_bytes") is not None:
            line += f" (limit {human_size(heap['max_growth_bytes'])})"
    return [line]


def format_cycles(cycles: Mapping[str, Any] | None) -> list[str]:
    if not cycles:
        return []
    lines = [f"cycles: {cycles['warmup']} warm-up + {cycles['runs']} counted runs"]
    objects = cycles["objects"]
    lines.append(f"  objects after each run: {sparkline(objects)} {objects}")
    traced = cycles.get("traced_bytes")
    if traced:
        sizes = ", ".join(human_size(t) for t in traced)
        lines.append(f"  heap after each run:    {sparkline(traced)} [{sizes}]")
    for name, deltas in sorted(cycles.get("per_run", {}).items()):
        if any(deltas):
            grows = "  <- grows every run" if name in cycles.get("growing", []) else ""
            lines.append(f"  {name} per counted run: {deltas}{grows}")
    return lines


def _merge_pending(pending: Iterable[Mapping[str, Any]]) -> list[tuple[Mapping[str, Any], int]]:
    """Five timers of one chain, differing only in their names' numbers, are one line."""
    merged: dict[tuple[str, str], tuple[Mapping[str, Any], int]] = {}
    for p in pending:
        shape = (p["kind"], re.sub(r"\d+", "#", p["description"]))
        first, n = merged.get(shape, (p, 0))
        merged[shape] = (first, n + 1)
    return list(merged.values())


def format_findings(data: Mapping[str, Any]) -> str:
    groups = list(data["leaks"])
    lines = [f"leakcheck: {verdict_line(data)}", ""]
    for group in groups[:MAX_GROUPS_SHOWN]:
        lines.extend(format_group(group))
        if group.get("fingerprint"):
            lines.append(f"  fingerprint: {group['fingerprint']}")
        if group.get("graph"):
            lines.append(f"  graph: {group['graph']}")
        lines.append("")
    if len(groups) > MAX_GROUPS_SHOWN:
        lines.append(f"... and {len(groups) - MAX_GROUPS_SHOWN} more groups (see the JSON report)")
    if data.get("pending"):
        lines.append("left running or changed by the test:")
        merged = _merge_pending(data["pending"])
        for p, n in merged[:MAX_PENDING_SHOWN]:
            label = _LABELS.get(p["verdict"], p["verdict"])
            more = f" (and {n - 1} more like it)" if n > 1 else ""
            lines.append(f"  {label} {n} x {p['kind']}: {p['description']}{more}")
            if p.get("created"):
                lines.append(f"    started at {p['created']}")
        hidden = len(merged) - MAX_PENDING_SHOWN
        if hidden > 0:
            lines.append(f"  ... and {hidden} more (see the JSON report)")
        lines.append("")
    if data.get("proof"):
        lines.append("after the check:")
        lines.extend(f"  {line}" for line in data["proof"])
        lines.append("")
    lines.extend(format_cycles(data.get("cycles")))
    lines.extend(format_heap(data))
    # A named object's report says where the test named it; the others, where they were made.
    unsited = [g for g in groups if not g.get("created") and g.get("expected") is None]
    if not data.get("traced") and unsited:
        lines.append(
            "(run with --leakcheck-trace to see where these objects were created; from Python "
            "3.12 on, it is noted without)"
        )
    if data.get("settle_seconds", 0) >= 0.001:
        waited = data["settle_seconds"] * 1000
        lines.append(f"(waited {waited:.0f} ms for threads started by the test to finish)")
    return "\n".join(lines).rstrip() + "\n"


def summary_lines(entries: Iterable[Mapping[str, Any]], limit: int = 20) -> list[str]:
    out: list[str] = []
    items = list(entries)
    for entry in items[:limit]:
        parts = [
            f"{g['count']} x {g['type']}{_retaining(g).rstrip(',')} ({root_word(g)})"
            for g in entry["leaks"]
        ]
        if entry.get("heap_leak"):
            parts.append(_heap_verdict(entry))
        if entry.get("pending") and not entry["leaks"]:
            parts.append(verdict_line(entry))
        out.append(f"{entry['verdict'].upper()} {entry['nodeid']}: {'; '.join(parts)}")
    if len(items) > limit:
        out.append(f"... and {len(items) - limit} more tests (see the JSON report)")
    return out


def session_summary(entries: Sequence[Mapping[str, Any]], explain_budget: float) -> list[str]:
    """The end-of-run summary: each test's verdict, each leak once, and the counts."""
    leaks = sum(1 for e in entries if e["verdict"] == "leak")
    known = sum(1 for e in entries if e["verdict"] == "known")
    suspects = len(entries) - leaks - known
    lines = [*summary_lines(entries), *fingerprint_lines(entries)]
    if known:
        lines.append(f"{known} test(s) with only known leaks (in the baseline)")
    groups = [g for e in entries for g in e["leaks"] if g["verdict"] == "suspect"]
    unexplained = sum(1 for g in groups if g.get("not_walked") == "budget")
    if unexplained:
        walked = sum(1 for g in groups if not g.get("not_walked"))
        lines.append(
            f"{walked} suspect group(s) walked to their root, {unexplained} counted without a "
            f"path: explaining suspects had used its {explain_budget:g}% of the session's time "
            f"(raise it with --leakcheck-explain-budget, or walk every one with "
            f"--leakcheck-strict)"
        )
    lines.append(
        f"{leaks} leaking, {suspects} suspect test(s); suspects do not fail the run "
        f"(use --leakcheck-strict to make them fail)"
        if suspects
        else f"{leaks} leaking test(s)"
    )
    return lines


def leftover_lines(leftovers: Sequence[Mapping[str, Any]], limit: int = 10) -> list[str]:
    """What tests left running that later checks found, and stopped."""
    lines = [
        f"leakcheck: {left['made_by']} left {left['kind']} running, found and stopped while "
        f"{left['found_in']} was checked: {left['description']}"
        for left in leftovers[:limit]
    ]
    if len(leftovers) > limit:
        lines.append(f"... and {len(leftovers) - limit} more (see the JSON report)")
    return lines


def fingerprint_lines(entries: Iterable[Mapping[str, Any]], limit: int = 10) -> list[str]:
    """The same leak in many tests, once: largest retained first."""
    seen: dict[str, tuple[Mapping[str, Any], list[str]]] = {}
    for entry in entries:
        for group in entry.get("leaks", []):
            if group.get("verdict") == "leak" and group.get("fingerprint"):
                _, tests = seen.setdefault(group["fingerprint"], (group, []))
                tests.append(entry["nodeid"])
    if not seen:
        return []
    ranked = sorted(seen.items(), key=lambda kv: -(kv[1][0].get("retained_bytes") or 0))
    lines = ["leaks by fingerprint, largest retained first:"]
    for fingerprint, (group, tests) in ranked[:limit]:
        where = f"{tests[0]}" + (f" and {len(tests) - 1} more tests" if len(tests) > 1 else "")
        lines.append(
            f"  {fingerprint} {group['type']}{_retaining(group).rstrip(',')} "
            f"({root_word(group)}) in {where}"
        )
    if len(ranked) > limit:
        lines.append(f"  ... and {len(ranked) - limit} more fingerprints (see the JSON report)")
    return lines


def junit_properties(data: Mapping[str, Any]) -> list[tuple[str, object]]:
    """Figures for JUnit XML's <properties>, where CI systems show them next to the test."""
    leaks = [g for g in data.get("leaks", []) if g["verdict"] == "leak"]
    props: list[tuple[str, object]] = [("leakcheck_verdict", data["verdict"])]
    if leaks:
        props.append(("leakcheck_leaked_objects", sum(g["count"] for g in leaks)))
        props.append(("leakcheck_retained_bytes", data.get("retained_bytes") or 0))
        props.append(("leakcheck_roots", ",".join(sorted({root_word(g) for g in leaks}))))
        props.append(("leakcheck_fingerprints", ",".join(g["fingerprint"] for g in leaks)))
    return props


def write_json(path: str, entries: Iterable[Mapping[str, Any]], extra: Mapping[str, Any]) -> None:
    tests = [dict(e) for e in entries]
    doc = {"version": SCHEMA_VERSION, **extra, "tests": tests}
    write_atomic(path, json.dumps(doc, indent=2, sort_keys=False) + "\n")


def proof_lines(proof: Proof, groups: Iterable[LeakGroup]) -> list[str]:
    """What stopping what was left running did, one line per kind of action."""
    groups = list(groups)
    sizes = {g.type: (g.count, None if g.retained_within else g.retained_bytes) for g in groups}
    lines = []
    for outcome in proof.outcomes:
        times = _times(outcome.times, outcome.rearmed)
        if not outcome.stopped:
            lines.append(outcome.action + times)
        elif not outcome.freed:
            lines.append(f"{outcome.action}{times} freed nothing that leaked")
        else:
            freed = _freed_text(outcome.freed, sizes)
            lines.append(f"confirmed: {outcome.action}{times} freed {freed}")
    lines.extend(proof.disarmed)
    if proof.still_alive and lines:
        stuck = any(not outcome.stopped for outcome in proof.outcomes)
        why = "by what could not be stopped, or by" if stuck else "by"
        lines.append(
            "still alive after stopping what could be stopped: "
            + ", ".join(f"{n} x {t}" for t, n in proof.still_alive)
            + f" (held {why} something else as well)"
        )
    return lines


def _times(times: int, rearmed: int) -> str:
    """How many alike were stopped, saying how many of them a chain armed while it was stopped:
    the count left running was made before."""
    first = times - rearmed
    parts = [f"and {first - 1} more like it"] if first > 1 else []
    if rearmed:
        parts.append(f"and {rearmed} that the chain re-armed while it was stopped")
    return f" ({'; '.join(parts)})" if parts else ""


def _freed_text(
    freed: Iterable[tuple[str, int]], sizes: Mapping[str, tuple[int, int | None]]
) -> str:
    parts = []
    for name, n in freed:
        count, size = sizes.get(name, (0, None))
        whole = size is not None and n == count
        parts.append(f"{n} x {name}" + (f" ({human_size(size)})" if whole and size else ""))
    return ", ".join(parts)
