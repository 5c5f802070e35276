"""The files a session writes: the JSON report, the baseline, the JUnit rewrite, the graphs.

Paths are checked before any test runs (an unwritable one is a usage error), files are written
whole or not at all, and a write that fails at the end fails the run with one line: a CI gate whose
report is missing must not pass.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest

from . import baseline, files, graphs, junit, report
from .errors import usage
from .findings import Findings


class Outputs:
    def __init__(self, config: pytest.Config, json_path: str | None) -> None:
        self.config = config
        here = str(config.invocation_params.dir)
        self.json_path = os.path.join(here, json_path) if json_path else None
        raw = config.getoption("leakcheck_baseline") or config.getini("leakcheck_baseline")
        self.baseline_path = os.path.join(here, str(raw)) if raw else None
        self.update_baseline = bool(config.getoption("leakcheck_update_baseline"))
        graphs_dir = config.getoption("leakcheck_graphs") or config.getini("leakcheck_graphs")
        self.graphs_dir = os.path.join(here, str(graphs_dir)) if graphs_dir else None
        self.write_errors: list[str] = []
        # Under xdist the controller writes the files; the workers only send their reports.
        self.writes_files = not hasattr(config, "workerinput")

    def check_paths(self) -> None:
        """An unwritable report path is a usage error now, not a traceback after the run."""
        if not self.writes_files:
            return
        wanted = [(self.json_path, "JSON report (--leakcheck-json / leakcheck_json)")]
        if self.update_baseline:
            wanted.append((self.baseline_path, "baseline (--leakcheck-baseline)"))
        for path, what in wanted:
            if path is None:
                continue
            try:
                files.check_writable(path, what)
            except files.UnwritableError as exc:
                raise usage(str(exc)) from None

    def known_leaks(self) -> frozenset[str]:
        """The fingerprints of the baseline file, when the run has one and is not rewriting it."""
        if self.baseline_path is None:
            if self.update_baseline:
                raise usage(
                    "--leakcheck-update-baseline needs a file: add --leakcheck-baseline=FILE "
                    "(or leakcheck_baseline = FILE in the ini file)."
                )
            return frozenset()
        if self.update_baseline:
            return frozenset()  # rewriting it: every leak of this run is recorded, none hidden
        try:
            return baseline.read(self.baseline_path)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise usage(
                f"cannot read the baseline {self.baseline_path}: {exc}. Regenerate it with "
                f"--leakcheck-update-baseline, or fix the file."
            ) from None

    def write_graphs(self, nodeid: str, findings: Findings, data: Mapping[str, Any]) -> list[str]:
        """Each leak's path as a graph file; the paths are put in ``data`` and returned."""
        if self.graphs_dir is None:
            return []
        written = []
        for group, entry in zip(findings.groups, data["leaks"], strict=True):
            dot = group.retentions[0].dot if group.retentions else None
            if dot is None:
                continue
            name = f"{nodeid}--{group.type}--{entry['fingerprint']}"
            dot_path, svg_path = graphs.write(self.graphs_dir, name, dot)
            entry["graph"] = svg_path or dot_path
            written.append(entry["graph"])
        return written

    def write_all(
        self,
        entries: Sequence[Mapping[str, Any]],
        extra: Mapping[str, Any],
        session: pytest.Session,
    ) -> None:
        """At the end of the session: every file that was asked for."""
        if not self.writes_files:
            return
        baseline_path = self.baseline_path
        if baseline_path and self.update_baseline:
            self._write("baseline", baseline_path, lambda: baseline.write(baseline_path, entries))
        json_path = self.json_path
        if json_path:
            self._write(
                "JSON report", json_path, lambda: report.write_json(json_path, entries, extra)
            )
        junit_path = self._junit_path()
        leaked = any(e["verdict"] == "leak" for e in entries)
        if junit_path and os.path.exists(junit_path) and leaked:
            self._write("JUnit XML", junit_path, lambda: junit.leaks_as_failures(junit_path))
        if self.write_errors and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.USAGE_ERROR

    def _junit_path(self) -> str | None:
        raw = getattr(self.config.option, "xmlpath", None)  # pytest's own --junitxml
        if not isinstance(raw, str) or not raw:
            return None
        # As pytest's junitxml resolves it, at configure time.
        return os.path.normpath(os.path.abspath(os.path.expanduser(os.path.expandvars(raw))))

    def _write(self, what: str, path: str, action: Callable[[], object]) -> None:
        try:
            action()
        except (OSError, ValueError, ET.ParseError) as exc:
            message = f"pytest-leakcheck: could not write the {what} to {path}: {exc}"
            self.write_errors.append(message)
            reporter = self.config.pluginmanager.get_plugin("terminalreporter")
            if reporter is not None:
                reporter.write_line(message, red=True)


def add_html_links(rep: pytest.TestReport, paths: list[str]) -> None:
    """Link each leak's graph from pytest-html's report, when pytest-html is installed."""
    if not paths:
        return
    try:
        from pytest_html import extras
    except ImportError:
        return
    links = list(getattr(rep, "extras", []))
    links.extend(extras.url(path, name=f"leak graph {os.path.basename(path)}") for path in paths)
    rep.extras = links  # type: ignore[attr-defined]
