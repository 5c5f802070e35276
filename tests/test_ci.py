"""CI integration: fingerprints, the baseline of known leaks, JUnit XML, the grouped summary."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from helpers import TIMER_LEAK
from pytest_leakcheck.baseline import group_fingerprint

LEAKS = """
    import threading
    import pytest

    REGISTRY = []

    class User:
        def tick(self):
            pass

    class Session:
        pass

    @pytest.mark.leakcheck
    def test_timer_one():
        t = threading.Timer(60, User().tick)
        t.daemon = True
        t.start()

    @pytest.mark.leakcheck
    def test_timer_two():
        t = threading.Timer(60, User().tick)
        t.daemon = True
        t.start()

    @pytest.mark.leakcheck
    def test_registry():
        REGISTRY.append(Session())
"""


def leak_fingerprints(path: str) -> dict[str, list[str]]:
    with open(path, encoding="utf-8") as fh:
        doc = json.load(fh)
    return {
        t["nodeid"].rpartition("::")[2]: sorted(g["fingerprint"] for g in t["leaks"])
        for t in doc["tests"]
    }


def test_fingerprints_ignore_numbers_and_locations() -> None:
    one = group_fingerprint(
        "m.User", "threading.Timer", ["frame of run (/a/threading.py:1399)", "[140] -> dict"]
    )
    two = group_fingerprint(
        "m.User", "threading.Timer", ["frame of run (/b/threading.py:1402)", "[977] -> dict"]
    )
    other = group_fingerprint("m.User", "module global", ["module m", ".REG -> list"])
    assert one == two != other
    assert len(one) == 12
    # Which survivor of a group the path was traced to does not change it.
    aapl = group_fingerprint(
        "m.Buf", "asyncio.Task", ["loop", ".buffers -> dict", "['AAPL'] -> m.Buf"]
    )
    msft = group_fingerprint(
        "m.Buf", "asyncio.Task", ["loop", ".buffers -> dict", "['MSFT'] -> m.Buf"]
    )
    assert aapl == msft != group_fingerprint("m.Buf", "asyncio.Task", ["loop", ".cache -> dict"])


def test_the_same_leak_has_the_same_fingerprint_across_tests_and_runs(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(LEAKS)
    pytester.runpytest_subprocess("--leakcheck-json=first.json")
    pytester.runpytest_subprocess("--leakcheck-json=second.json", "-p", "no:randomly")
    first = leak_fingerprints(str(pytester.path / "first.json"))
    second = leak_fingerprints(str(pytester.path / "second.json"))
    assert first == second
    assert first["test_timer_one"] == first["test_timer_two"] != first["test_registry"]


def test_a_baseline_lets_known_leaks_pass_and_new_ones_fail(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(LEAKS)
    recorded = pytester.runpytest_subprocess(
        "--leakcheck-baseline=known.json", "--leakcheck-update-baseline"
    )
    recorded.assert_outcomes(passed=3, failed=3)  # recording does not hide anything
    doc = json.loads((pytester.path / "known.json").read_text())
    assert doc["version"] == 1
    assert [k["root"] for k in doc["known"] if k["type"].endswith(".User")] == ["threading.Timer"]
    assert (pytester.path / "known.json").read_text() == json.dumps(
        doc, indent=2, sort_keys=True
    ) + "\n"  # stable and sorted: reviewable in a diff

    known = pytester.runpytest_subprocess("--leakcheck-baseline=known.json")
    known.assert_outcomes(passed=3)
    known.stdout.fnmatch_lines(["*3 test(s) with only known leaks (in the baseline)*"])

    pytester.makepyfile(
        test_new="""
        import pytest

        KEEP = []

        class Cache:
            pass

        @pytest.mark.leakcheck
        def test_new_leak():
            KEEP.append(Cache())
        """
    )
    with_new = pytester.runpytest_subprocess("--leakcheck-baseline=known.json")
    with_new.assert_outcomes(passed=4, failed=1)
    with_new.stdout.fnmatch_lines(["LEAKED test_new.py::test_new_leak*"])


def test_an_unreadable_baseline_is_a_usage_error(pytester: pytest.Pytester) -> None:
    (pytester.path / "known.json").write_text("[1, 2]")
    pytester.makepyfile("def test_it(): pass")
    result = pytester.runpytest("--leakcheck-baseline=known.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "cannot read the baseline" in result.stderr.str()
    assert "--leakcheck-update-baseline" in result.stderr.str()


def test_update_baseline_needs_a_file(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_it(): pass")
    result = pytester.runpytest("--leakcheck-update-baseline")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "needs a file: add --leakcheck-baseline=FILE" in result.stderr.str()


def test_junit_xml_carries_the_report_and_the_figures(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(LEAKS)
    pytester.runpytest_subprocess("--junitxml=junit.xml")
    tree = ET.parse(pytester.path / "junit.xml")
    case = next(c for c in tree.iter("testcase") if c.get("name") == "test_timer_one")
    # A leak is the test's failure, as CI systems show a failed assertion; not an error.
    assert case.find("error") is None
    failure = case.find("failure")
    assert failure is not None
    assert "leakcheck: leaked 1 object of User, held by threading.Timer" in (failure.text or "")
    assert (failure.get("message") or "").startswith("leakcheck: leaked 1 object of User")
    [suite] = tree.iter("testsuite")
    cases = list(tree.iter("testcase"))
    failed = sum(1 for c in cases if c.find("failure") is not None)
    errored = sum(1 for c in cases if c.find("error") is not None)
    assert failed >= 1
    assert (suite.get("failures"), suite.get("errors")) == (str(failed), str(errored))
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props["leakcheck_verdict"] == "leak"
    assert props["leakcheck_leaked_objects"] == "1"
    assert props["leakcheck_roots"] == "threading.Timer"
    assert int(props["leakcheck_retained_bytes"] or 0) > 0
    assert len(props["leakcheck_fingerprints"] or "") == 12


def test_the_summary_groups_one_leak_seen_in_many_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(LEAKS)
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.stdout.fnmatch_lines(
        [
            "*leakcheck summary*",
            "leaks by fingerprint, largest retained first:",
            "  * *.User, retaining * (threading.Timer) in *test_timer_one and 1 more tests",
        ]
    )


def test_graphs_are_written_for_every_leak(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import threading
        import pytest

        class User:
            def __init__(self):
                self.name = 'quote " and \\x1b[31m escape'  # labels must be escaped

            def tick(self):
                pass

        @pytest.mark.leakcheck
        def test_timer():
            t = threading.Timer(60, User().tick)
            t.daemon = True
            t.start()
        """
    )
    result = pytester.runpytest_subprocess("--leakcheck-graphs=graphs")
    result.stdout.fnmatch_lines(["  graph: *graphs/*test_timer--*.User--*"])
    [dot] = (pytester.path / "graphs").glob("*.dot")
    text = dot.read_text()
    assert text.startswith("digraph ObjectGraph {")
    assert 'label="Timer' in text
    assert "\x1b" not in text
    assert "[fontcolor=red]" in text  # the root is highlighted
    assert 'label="function"' in text  # edges carry the attribute names


def test_graphs_are_rendered_to_svg_when_graphviz_is_installed(pytester: pytest.Pytester) -> None:
    import shutil

    if shutil.which("dot") is None:
        pytest.skip("Graphviz's dot is not installed (.ci/run installs it)")
    pytester.makepyfile(
        """
        import pytest

        KEEP = []

        class User:
            pass

        @pytest.mark.leakcheck
        def test_global():
            KEEP.append(User())
        """
    )
    pytester.runpytest_subprocess("--leakcheck-graphs=graphs")
    [svg] = (pytester.path / "graphs").glob("*.svg")
    assert svg.read_text().lstrip().startswith(("<?xml", "<svg"))


def test_an_unwritable_report_path_is_a_usage_error_before_any_test_runs(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile("def test_it(): pass")
    result = pytester.runpytest("--leakcheck", "--leakcheck-json=no/such/dir/out.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "cannot write the JSON report (--leakcheck-json / leakcheck_json) to" in err
    assert "does not exist; create it or choose another path" in err
    assert "Traceback" not in err + result.stdout.str()
    result = pytester.runpytest("--leakcheck", f"--leakcheck-json={pytester.path}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "is a directory; give a file name" in result.stderr.str()


def test_a_report_that_cannot_be_written_at_the_end_fails_the_run_with_a_clear_line(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import os
        def test_removes_the_report_directory():
            os.rmdir("reports")
        """
    )
    (pytester.path / "reports").mkdir()
    result = pytester.runpytest("--leakcheck", "--leakcheck-json=reports/out.json")
    result.stdout.fnmatch_lines(
        ["pytest-leakcheck: could not write the JSON report to *out.json: *"]
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "INTERNALERROR" not in result.stdout.str()


def test_report_files_are_replaced_whole(pytester: pytest.Pytester, monkeypatch) -> None:
    import os

    from pytest_leakcheck import files

    target = pytester.path / "out.json"
    target.write_text("old")
    real_replace = os.replace

    def interrupted(src: str, dst: str) -> None:
        # The new content is complete in the temporary file before it takes the name.
        assert Path(src).read_text(encoding="utf-8") == "new content"
        assert target.read_text() == "old"
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(OSError, match="disk gone"):
        files.write_atomic(str(target), "new content")
    monkeypatch.setattr(os, "replace", real_replace)
    assert target.read_text() == "old"
    assert [p.name for p in pytester.path.iterdir()] == ["out.json"]  # no temporary file left
    files.write_atomic(str(target), "new content")
    assert target.read_text() == "new content"


def test_the_json_report_is_written_when_nothing_leaked(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_it(): pass")
    pytester.runpytest("--leakcheck", "--leakcheck-json=report.json").assert_outcomes(passed=1)
    doc = json.loads((pytester.path / "report.json").read_text())
    assert (doc["version"], doc["not_checked"], doc["tests"]) == (1, [], [])
    [checked] = doc["checked"]
    assert checked["nodeid"] == "test_the_json_report_is_written_when_nothing_leaked.py::test_it"
    assert isinstance(checked["objects_added"], int)
    assert checked["traced_growth_bytes"] is None  # tracemalloc only runs when a test asks


def test_the_json_report_lists_each_leak_with_type_count_root_and_path(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(TIMER_LEAK)
    pytester.runpytest("--leakcheck-json=report.json")
    doc = json.loads((pytester.path / "report.json").read_text())
    [entry] = doc["tests"]
    assert entry["nodeid"].endswith("::test_leaks")
    assert entry["verdict"] == "leak"
    [leak] = entry["leaks"]
    assert leak["type"].endswith(".User")
    assert leak["count"] == 1
    assert leak["root"] == "threading.Timer"
    assert leak["path"][-1].startswith(".__self__ -> ")


def test_xdist_workers_send_their_verdicts_to_one_summary_and_one_json(
    pytester: pytest.Pytester,
) -> None:
    pytest.importorskip("xdist")
    pytester.makepyfile(TIMER_LEAK.replace("def test_zz_stop_timers", "def _unused"))
    serial = pytester.runpytest_subprocess("-p", "no:randomly", "--leakcheck-json=serial.json")
    result = pytester.runpytest_subprocess(
        "-n", "2", "--leakcheck-json=dist.json", "--junitxml=dist.xml"
    )
    result.assert_outcomes(passed=2, failed=1)
    # The controller writes the JUnit XML: the leak is a failure there too, with its figures.
    case = next(
        c
        for c in ET.parse(pytester.path / "dist.xml").iter("testcase")
        if c.get("name") == "test_leaks"
    )
    assert case.find("failure") is not None and case.find("error") is None
    assert any(p.get("name") == "leakcheck_verdict" for p in case.iter("property"))
    result.stdout.fnmatch_lines(["*leakcheck summary*", "LEAK *::test_leaks: 1 x *.User*"])
    dist = json.loads((pytester.path / "dist.json").read_text())
    assert serial.ret == result.ret == pytest.ExitCode.TESTS_FAILED
    serial_doc = json.loads((pytester.path / "serial.json").read_text())

    def verdicts(doc):
        return [(t["nodeid"], t["verdict"], [g["root"] for g in t["leaks"]]) for t in doc["tests"]]

    assert verdicts(dist) == verdicts(serial_doc)
    assert len(list(pytester.path.glob("*.json"))) == 2
