"""Settings and their validation. Pure: errors are ``ConfigError``; the plugin turns them into
``pytest.UsageError`` with the place the value came from."""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

GLOB_CHARS = frozenset("*?[")

ENABLE_HELP = "check every test for objects it leaves alive (ini: leakcheck)"
STRICT_HELP = (
    "check every test, as --leakcheck does, and also fail on survivors held only by module "
    "globals, class attributes or caches (ini: leakcheck_strict)"
)
JSON_HELP = "write a JSON report of leaks and suspects to this path (ini: leakcheck_json)"
TYPES_HELP = (
    "extra types to watch, as dotted names or globs, e.g. myapp.session.User myapp.cache.* "
    "(marker: positional arguments)"
)
MARKER_HELP = (
    "leakcheck(*types, enabled=True, strict=True, max_growth=None, runs=0, warmup=1, trace=False, "
    "ignore_threads=()): fail the test if instances of the project's classes (or of the named "
    "types) created during it are still alive after its teardown, or if it left timers, threads, "
    "handles, tasks or events running, and show what holds them"
)

MAX_GROWTH_HELP = (
    "fail a checked test whose heap (bytes it allocated and kept, traced with tracemalloc) grows "
    "by more than this, e.g. '10 MB' (marker: max_growth=)"
)
RUNS_HELP = (
    "run each checked test's body this many counted times after the warm-up runs, and call a "
    "type a leak only when it grew in every counted run (marker: runs=)"
)
WARMUP_HELP = "warm-up runs before the counted runs (marker: warmup=; default 1 when runs is set)"

TRACE_HELP = (
    "note where leaked objects and left-running timers were created (a profile function runs "
    "during checked tests: slower) (ini: leakcheck_trace; marker: trace=)"
)
KEEP_TIMERS_HELP = (
    "leave the timers, handles, tasks and events a test left pending running, for debugging; "
    "by default they are cancelled after the report (ini: leakcheck_keep_timers)"
)
IGNORE_THREADS_HELP = (
    "name globs of threads a test may leave running, e.g. 'pool-*' (marker: ignore_threads=)"
)

BASELINE_HELP = (
    "a file of known leaks (written by --leakcheck-update-baseline): those are listed but do not "
    "fail; new leaks do (ini: leakcheck_baseline)"
)
GRAPHS_HELP = (
    "write each leak's retention path as a Graphviz graph (DOT, drawn by objgraph; SVG too when "
    "Graphviz's dot is installed) into this directory (ini: leakcheck_graphs)"
)
EXPLAIN_BUDGET_HELP = (
    "under --leakcheck, the share of the session's time (percent, default 2) that walking and "
    "sizing suspects may take; past it, suspects are counted, not explained (leaks always are) "
    "(ini: leakcheck_explain_budget)"
)
DEFAULT_EXPLAIN_BUDGET = 2.0
UPDATE_BASELINE_HELP = "write every leak of this run to the --leakcheck-baseline file"

MARKER_KWARGS = ("enabled", "strict", "max_growth", "runs", "warmup", "trace", "ignore_threads")

_UNITS = {
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(value: object, *, name: str, source: str) -> int:
    """Bytes from ``1048576``, ``"10 MB"``, ``"1.5GiB"``, ``"512 B"``."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    match = _SIZE.match(value) if isinstance(value, str) else None
    unit = match.group(2).lower() if match else ""
    if match is None or (unit and unit not in _UNITS):
        raise ConfigError(
            f"{value!r} is not a valid size for {name} ({source}). Use a number of bytes or a "
            f"number with a unit: B, KB, MB, GB (powers of 1000) or KiB, MiB, GiB (powers of "
            f"1024), for example '10 MB'."
        )
    return int(float(match.group(1)) * _UNITS[unit or "b"])


def parse_names(value: object, *, name: str, source: str) -> tuple[str, ...]:
    """Thread name globs: one string or a list of strings."""
    items = [value] if isinstance(value, str) else value
    if isinstance(items, (list, tuple)) and all(isinstance(i, str) and i for i in items):
        return tuple(items)
    raise ConfigError(
        f"{value!r} is not a valid value for {name} ({source}): give a thread name glob or a "
        f"list of them, e.g. {name}=['pool-*', 'watcher']."
    )


def parse_percent(value: object, *, name: str, source: str) -> float:
    """A share of time in percent, 0 to 100: ``5``, ``"5"``, ``"2.5%"``."""
    text = value.strip().removesuffix("%").strip() if isinstance(value, str) else value
    try:
        number = float(text) if isinstance(text, (str, int, float)) else None
    except ValueError:
        number = None
    if isinstance(value, bool) or number is None or not 0 <= number <= 100:
        raise ConfigError(
            f"{value!r} is not a valid value for {name} ({source}): use a percentage from 0 "
            f"(never explain suspects) to 100 (explain each suspect type once), e.g. 5."
        )
    return number


def parse_count(value: object, *, name: str, source: str, minimum: int) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= minimum:
        return value
    raise ConfigError(
        f"{value!r} is not a valid value for {name} ({source}): use a whole number >= {minimum}."
    )


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


class ConfigError(ValueError):
    """A setting with a value that cannot be used; the message says what is valid."""


def parse_bool(value: object, *, name: str, source: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise ConfigError(
        f"{value!r} is not a valid value for {name} ({source}). "
        f"Valid values: true, false (also 1/0, yes/no, on/off)."
    )


@dataclass(frozen=True)
class WatchSpec:
    """Types to watch beyond the project's own classes: exact classes and name globs."""

    types: frozenset[type] = frozenset()
    patterns: tuple[str, ...] = ()

    def __or__(self, other: WatchSpec) -> WatchSpec:
        return WatchSpec(
            self.types | other.types, tuple(dict.fromkeys(self.patterns + other.patterns))
        )


def _import_prefix(name: str) -> tuple[object, list[str]]:
    """Import the longest importable module prefix of a dotted name; return it and the rest."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        return module, parts[cut:]
    raise ConfigError(f"no module of {name!r} can be imported")


def resolve_type_name(name: str) -> WatchSpec:
    if not name or name.strip() != name or ".." in name or name.startswith("."):
        raise ConfigError(f"{name!r} is not a dotted name like 'myapp.session.User'")
    if GLOB_CHARS.intersection(name):
        first_glob = min(i for i, ch in enumerate(name) if ch in GLOB_CHARS)
        module_part = name[:first_glob].rpartition(".")[0]
        if module_part:
            try:
                importlib.import_module(module_part)
            except ImportError as exc:
                raise ConfigError(
                    f"the module {module_part!r} of the pattern {name!r} cannot be imported ({exc})"
                ) from None
        return WatchSpec(patterns=(name,))
    obj, rest = _import_prefix(name)
    for attr in rest:
        try:
            obj = getattr(obj, attr)
        except AttributeError:
            raise ConfigError(f"{name!r} does not resolve: no attribute {attr!r}") from None
    if not isinstance(obj, type):
        raise ConfigError(f"{name!r} resolves to {type(obj).__name__} {obj!r}, not a class")
    return WatchSpec(types=frozenset({obj}))


def resolve_specs(values: Iterable[object]) -> WatchSpec:
    spec = WatchSpec()
    for value in values:
        if isinstance(value, type):
            spec = spec | WatchSpec(types=frozenset({value}))
        elif isinstance(value, str):
            spec = spec | resolve_type_name(value)
        else:
            raise ConfigError(
                f"{value!r} ({type(value).__name__}) is not a class or a dotted type name"
            )
    return spec


@dataclass(frozen=True)
class Settings:
    """Resolved once per session from the command line, then ini, then defaults."""

    check_all: bool = False
    strict: bool = False
    json_path: str | None = None
    watch: WatchSpec = field(default_factory=WatchSpec)
    max_growth: int | None = None
    runs: int = 0
    warmup: int | None = None
    trace: bool = False
    keep_timers: bool = False
    ignore_threads: tuple[str, ...] = ()
    explain_budget: float = DEFAULT_EXPLAIN_BUDGET  # percent of the session's time


@dataclass(frozen=True)
class ItemSettings:
    checked: bool
    strict: bool
    explicit: bool
    watch: WatchSpec
    reason: str
    max_growth: int | None = None
    runs: int = 0
    warmup: int = 0
    trace: bool = False
    keep_timers: bool = False
    ignore_threads: tuple[str, ...] = ()


@dataclass(frozen=True)
class MarkerArgs:
    args: Sequence[object]
    kwargs: Mapping[str, object]


def item_settings(session: Settings, markers: Sequence[MarkerArgs]) -> ItemSettings:
    """Merge the session settings with the item's markers, closest marker first."""
    for marker in markers:
        unknown = sorted(set(marker.kwargs) - set(MARKER_KWARGS))
        if unknown:
            raise ConfigError(
                f"unknown argument {unknown[0]!r} to @pytest.mark.leakcheck. "
                f"Valid keyword arguments: {', '.join(MARKER_KWARGS)}; positional arguments "
                f"are types to watch."
            )
    values: dict[str, object] = {}
    for key in MARKER_KWARGS:
        for marker in markers:
            if key in marker.kwargs:
                values[key] = marker.kwargs[key]
                break
    for key in ("enabled", "strict", "trace"):
        if key in values and not isinstance(values[key], bool):
            raise ConfigError(
                f"{key}={values[key]!r} in @pytest.mark.leakcheck is not a bool. "
                f"Use {key}=True or {key}=False."
            )
    where = "@pytest.mark.leakcheck"
    max_growth = session.max_growth
    if values.get("max_growth") is not None:
        max_growth = parse_size(values["max_growth"], name="max_growth", source=where)
    runs = session.runs
    if "runs" in values:
        runs = parse_count(values["runs"], name="runs", source=where, minimum=0)
    warmup = session.warmup
    if "warmup" in values:
        warmup = parse_count(values["warmup"], name="warmup", source=where, minimum=0)
    ignore_threads = session.ignore_threads
    if "ignore_threads" in values:
        ignore_threads += parse_names(values["ignore_threads"], name="ignore_threads", source=where)
    watch = session.watch
    for marker in markers:
        watch = watch | resolve_specs(marker.args)
    explicit = bool(markers)
    if explicit:
        checked = bool(values.get("enabled", True))
        strict = bool(values.get("strict", True))
        reason = "marked" if checked else "opted out with enabled=False"
    else:
        checked = session.check_all
        strict = session.strict
        reason = "--leakcheck" if checked else "not selected"
    return ItemSettings(
        checked=checked,
        strict=strict,
        explicit=explicit,
        watch=watch,
        reason=reason,
        max_growth=max_growth,
        runs=runs,
        warmup=(1 if runs else 0) if warmup is None else warmup,
        trace=bool(values.get("trace", session.trace)),
        keep_timers=session.keep_timers,
        ignore_threads=ignore_threads,
    )
