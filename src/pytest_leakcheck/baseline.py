"""Fingerprints of leaks, and the baseline file of known ones.

A fingerprint names a leak by what it is, not by where it was seen: the root kind, the leaked
type and the labels of the path's edges, with numbers (indexes, thread ids, line numbers) and
the keys of subscripts replaced: which of a group's survivors the path was traced to (the
buffer of 'AAPL' or of 'MSFT') must not change it. The same leak seen by two tests, or twice
in two runs, has one fingerprint, which is what lets a team record today's leaks in a baseline
file, switch the check on, and fix them one by one while new leaks fail the run.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

from .files import write_atomic
from .findings import test_verdict
from .report import root_word

_NUMBERS = re.compile(r"0x[0-9a-f]+|\d+(\.\d+)?")
# Paths of files and the "(at file:line)" of coroutines differ between machines and checkouts.
_LOCATIONS = re.compile(r"\([^()]*[/\\][^()]*\)")
_KEYS = re.compile(r"\[[^\[\]]*\]")

BASELINE_VERSION = 1


def _normal(text: str) -> str:
    return _NUMBERS.sub("#", _LOCATIONS.sub("(...)", text))


def group_fingerprint(type_name: str, kind: str, path: Iterable[str]) -> str:
    labels = [_KEYS.sub("[#]", step.split(" -> ", 1)[0]) for step in list(path)[1:]]
    return _digest("group", type_name, kind, *map(_normal, labels))


def pending_fingerprint(kind: str, description: str) -> str:
    return _digest("pending", kind, _normal(description))


def _digest(*parts: str) -> str:
    return hashlib.sha1("\x1f".join(parts).encode("utf-8")).hexdigest()[:12]


def add_fingerprints(data: dict[str, Any]) -> None:
    for group in data.get("leaks", []):
        group["fingerprint"] = group_fingerprint(group["type"], root_word(group), group["path"])
    for item in data.get("pending", []):
        item["fingerprint"] = pending_fingerprint(item["kind"], item["description"])


def apply(data: dict[str, Any], known: frozenset[str]) -> None:
    """Mark known leaks as such, and set the test's verdict from what is left."""
    for entry in [*data.get("leaks", []), *data.get("pending", [])]:
        if entry.get("verdict") == "leak" and entry.get("fingerprint") in known:
            entry["verdict"] = "known"
    entries = [*data.get("leaks", []), *data.get("pending", [])]
    verdicts = [e["verdict"] for e in entries]
    data["verdict"] = test_verdict(verdicts, heap_leak=bool(data.get("heap_leak")))


def read(path: str) -> frozenset[str]:
    """The fingerprints listed in a baseline file; a missing file is an empty baseline."""
    if not os.path.exists(path):
        return frozenset()
    with open(path, encoding="utf-8") as fh:
        doc = json.load(fh)
    if not isinstance(doc, dict) or not isinstance(doc.get("known"), list):
        raise ValueError("not a pytest-leakcheck baseline: expected {'version': 1, 'known': [...]}")
    return frozenset(str(item["fingerprint"]) for item in doc["known"])


def write(path: str, entries: Iterable[Mapping[str, Any]]) -> int:
    """Write every leak of these test entries as known; sorted and stable for review in a diff."""
    known: dict[str, dict[str, str]] = {}
    for entry in entries:
        for group in entry.get("leaks", []):
            if group.get("verdict") in ("leak", "known"):
                known.setdefault(
                    group["fingerprint"],
                    {
                        "fingerprint": group["fingerprint"],
                        "type": group["type"],
                        "root": group["root"],
                        "first_seen_in": entry["nodeid"],
                    },
                )
        for item in entry.get("pending", []):
            if item.get("verdict") in ("leak", "known"):
                known.setdefault(
                    item["fingerprint"],
                    {
                        "fingerprint": item["fingerprint"],
                        "type": item["kind"],
                        "root": _normal(item["description"]),
                        "first_seen_in": entry["nodeid"],
                    },
                )
    doc = {
        "version": BASELINE_VERSION,
        "known": sorted(known.values(), key=lambda k: (k["type"], k["root"], k["fingerprint"])),
    }
    write_atomic(path, json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return len(known)
