"""JUnit XML: a leak is a failure of its test, not an error.

pytest reports every failing teardown as ``<error>``, and the check runs at teardown. Rewriting
pytest's in-memory reporters would tie the plugin to pytest's internals; the written file is a
stable format. So after pytest has written it, the leaking test cases (those whose properties
say ``leakcheck_verdict = leak``) get their ``<error>`` renamed to ``<failure>``, and the suite's
counts follow. A test case is judged only when its setup, body and teardown passed, so the one
``<error>`` of a leaking test case is the check's.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from .files import write_atomic


def leaks_as_failures(path: str) -> int:
    """Rewrite the JUnit file at ``path``; return how many test cases changed."""
    tree = ET.parse(path)
    changed = 0
    for suite in tree.getroot().iter("testsuite"):
        moved = 0
        for case in suite.iter("testcase"):
            properties = {p.get("name"): p.get("value") for p in case.iter("property")}
            if properties.get("leakcheck_verdict") != "leak":
                continue
            for child in case:
                if child.tag == "error":
                    child.tag = "failure"
                    child.set("message", _headline(child.text or ""))
                    moved += 1
        if moved:
            suite.set("errors", str(int(suite.get("errors") or 0) - moved))
            suite.set("failures", str(int(suite.get("failures") or 0) + moved))
            changed += moved
    if changed:
        body = ET.tostring(tree.getroot(), encoding="unicode")
        write_atomic(path, '<?xml version="1.0" encoding="utf-8"?>' + body)
    return changed


def _headline(report: str) -> str:
    """The report's first line (its verdict), as the failure's message."""
    return report.strip().partition("\n")[0]
