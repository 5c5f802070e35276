"""Bad input gets a clear error: the value, where it came from, what is valid, how to fix it."""

from __future__ import annotations

import pytest

from pytest_leakcheck.config import (
    ConfigError,
    parse_bool,
    parse_percent,
    parse_size,
    resolve_type_name,
)


@pytest.fixture
def usage_error(pytester: pytest.Pytester):
    """Run pytest in-process and return its stderr, asserting it stopped with a usage error."""

    def run(*args: str) -> str:
        result = pytester.runpytest(*args)
        assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
        return result.stderr.str()

    return run


def marked(pytester: pytest.Pytester, marker_args: str) -> None:
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.leakcheck({marker_args})
        def test_it():
            pass
        """
    )


def test_an_unknown_marker_argument_names_the_test_the_argument_and_the_valid_ones(
    pytester: pytest.Pytester, usage_error
) -> None:
    marked(pytester, "strickt=True")
    err = usage_error()
    assert (
        "test_an_unknown_marker_argument_names_the_test_the_argument_and_the_valid_ones.py::test_it"
        in err
    )
    assert "'strickt'" in err
    assert "enabled, strict" in err


def test_a_non_bool_marker_flag_is_rejected(pytester: pytest.Pytester, usage_error) -> None:
    marked(pytester, "enabled='yes'")
    err = usage_error()
    assert "enabled='yes'" in err
    assert "enabled=True or enabled=False" in err


@pytest.mark.parametrize(
    ("argument", "expected"),
    [
        ("42", "42 (int) is not a class or a dotted type name"),
        ("'nosuchmodule_xyz.User'", "no module of 'nosuchmodule_xyz.User' can be imported"),
        ("'os.NoSuchThing'", "no attribute 'NoSuchThing'"),
        ("'os.path'", "not a class"),
        ("'nosuchmodule_xyz.sub.*'", "'nosuchmodule_xyz.sub' of the pattern"),
        ("'os..path'", "is not a dotted name"),
    ],
)
def test_a_marker_type_that_does_not_resolve_is_rejected_at_collection(
    pytester: pytest.Pytester, usage_error, argument: str, expected: str
) -> None:
    marked(pytester, argument)
    err = usage_error()
    assert expected in err
    assert "::test_it" in err


def test_a_bad_marker_on_a_class_is_reported_for_its_tests(
    pytester: pytest.Pytester, usage_error
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.leakcheck(bogus=1)
        class TestGroup:
            def test_one(self):
                pass
        """
    )
    err = usage_error()
    assert "TestGroup::test_one" in err
    assert "its class or its module" in err


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("leakcheck = maybe", "'maybe' is not a valid value for leakcheck"),
        ("leakcheck_strict = 2", "'2' is not a valid value for leakcheck_strict"),
    ],
)
def test_a_bad_ini_boolean_names_the_value_the_file_and_the_valid_values(
    pytester: pytest.Pytester, usage_error, line: str, expected: str
) -> None:
    ini = pytester.makeini(f"[pytest]\n{line}\n")
    pytester.makepyfile("def test_it(): pass")
    err = usage_error()
    assert expected in err
    assert str(ini) in err
    assert "Valid values: true, false" in err


def test_a_bad_ini_type_name_is_rejected(pytester: pytest.Pytester, usage_error) -> None:
    pytester.makeini("[pytest]\nleakcheck_types = os.path.NoSuchClass\n")
    pytester.makepyfile("def test_it(): pass")
    err = usage_error()
    assert "leakcheck_types" in err
    assert "no attribute 'NoSuchClass'" in err


def test_the_flag_wins_over_the_ini_value(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nleakcheck = false\n")
    pytester.makepyfile(
        """
        REGISTRY = []
        class Thing:
            pass
        def test_it():
            import threading
            t = threading.Timer(60, lambda thing=Thing(): thing)
            t.daemon = True
            t.start()
            REGISTRY.append(t)
        def test_stop():
            REGISTRY.pop().cancel()
        """
    )
    assert pytester.runpytest().ret == pytest.ExitCode.OK
    assert pytester.runpytest("--leakcheck").ret == pytest.ExitCode.TESTS_FAILED


@pytest.mark.parametrize("text", ["true", "True", "1", "yes", "on"])
def test_true_spellings(text: str) -> None:
    assert parse_bool(text, name="leakcheck", source="ini") is True


@pytest.mark.parametrize("text", ["false", "0", "no", "off", ""])
def test_false_spellings(text: str) -> None:
    assert parse_bool(text, name="leakcheck", source="ini") is False


def test_type_names_resolve_to_classes_and_globs_to_patterns() -> None:
    import collections

    assert resolve_type_name("collections.OrderedDict").types == {collections.OrderedDict}
    assert resolve_type_name("collections.*Dict").patterns == ("collections.*Dict",)
    with pytest.raises(ConfigError):
        resolve_type_name("collections.nothing_here")


def test_the_marker_and_options_are_documented(pytester: pytest.Pytester) -> None:
    markers = pytester.runpytest("--markers").stdout.str()
    assert (
        "@pytest.mark.leakcheck(*types, enabled=True, strict=True, max_growth=None, runs=0"
        in markers
    )
    help_text = pytester.runpytest("--help").stdout.str()
    for option in ("--leakcheck", "--leakcheck-strict", "--leakcheck-json=PATH"):
        assert option in help_text
    inis = ("leakcheck (string)", "leakcheck_strict", "leakcheck_json", "leakcheck_types")
    for ini in (*inis, "leakcheck_max_growth", "leakcheck_runs", "leakcheck_warmup"):
        assert ini in help_text


def test_the_marker_passes_strict_markers(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.leakcheck
        def test_it():
            pass
        """
    )
    pytester.runpytest("--strict-markers").assert_outcomes(passed=1)


@pytest.mark.parametrize("value", ["lots", "150", "-1", ""])
def test_a_bad_explain_budget_option_is_rejected(
    pytester: pytest.Pytester, usage_error, value: str
) -> None:
    pytester.makepyfile("def test_it(): pass")
    err = usage_error(f"--leakcheck-explain-budget={value}")
    assert f"{value!r} is not a valid value for leakcheck_explain_budget (command line)" in err
    assert "percentage from 0" in err
    assert "Fix --leakcheck-explain-budget" in err


def test_a_bad_explain_budget_ini_value_names_the_file(
    pytester: pytest.Pytester, usage_error
) -> None:
    ini = pytester.makeini("[pytest]\nleakcheck_explain_budget = half\n")
    pytester.makepyfile("def test_it(): pass")
    err = usage_error()
    assert "'half' is not a valid value for leakcheck_explain_budget" in err
    assert str(ini) in err


@pytest.mark.parametrize("text, expected", [("5", 5.0), (" 2.5% ", 2.5), ("0", 0.0), (100, 100.0)])
def test_explain_budget_spellings(text: object, expected: float) -> None:
    assert parse_percent(text, name="x", source="test") == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10 MB", 10_000_000),
        ("10MB", 10_000_000),
        ("1.5 GiB", int(1.5 * 1024**3)),
        ("512 B", 512),
        ("512", 512),
        ("64 kib", 65536),
        (2048, 2048),
    ],
)
def test_sizes_parse_with_units(text: str | int, expected: int) -> None:
    assert parse_size(text, name="max_growth", source="test") == expected


@pytest.mark.parametrize("text", ["10 MBs", "ten MB", "-5 MB", "", "5 TB", True, 1.5])
def test_bad_sizes_are_refused_with_the_valid_units(text: object) -> None:
    with pytest.raises(ConfigError, match=r"B, KB, MB, GB .* KiB, MiB, GiB"):
        parse_size(text, name="max_growth", source="test")


def test_a_bad_max_growth_in_a_marker_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.leakcheck(max_growth="lots")
        def test_it():
            pass
        """
    )
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "'lots' is not a valid size for max_growth" in result.stderr.str()


def test_a_bad_ini_runs_value_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nleakcheck_runs = many\n")
    pytester.makepyfile("def test_it(): pass")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "'many' is not a valid value for leakcheck_runs" in result.stderr.str()


def test_a_bad_ignore_threads_argument_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.leakcheck(ignore_threads=3)
        def test_it():
            pass
        """
    )
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "3 is not a valid value for ignore_threads" in result.stderr.str()
