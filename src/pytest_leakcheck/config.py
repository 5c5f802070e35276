"""Settings and their validation. Pure: errors are ``ConfigError``; the plugin turns them into
``pytest.UsageError`` with the place the value came from."""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

GLOB_CHARS = frozenset("*?[")

ENABLE_HELP = "check every test for objects it leaves alive (ini: leakcheck)"
STRICT_HELP = (
    "under --leakcheck, also fail on survivors held only by module globals, class attributes or "
    "caches (ini: leakcheck_strict)"
)
JSON_HELP = "write a JSON report of leaks and suspects to this path (ini: leakcheck_json)"
TYPES_HELP = (
    "extra types to watch, as dotted names or globs, e.g. myapp.session.User myapp.cache.* "
    "(marker: positional arguments)"
)
MARKER_HELP = (
    "leakcheck(*types, enabled=True, strict=True): fail the test if instances of the project's "
    "classes (or of the named types) created during it are still alive after its teardown, and "
    "show what holds them"
)

MARKER_KWARGS = ("enabled", "strict")

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


@dataclass(frozen=True)
class ItemSettings:
    checked: bool
    strict: bool
    explicit: bool
    watch: WatchSpec
    reason: str


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
    values: dict[str, bool] = {}
    for key in MARKER_KWARGS:
        for marker in markers:
            if key in marker.kwargs:
                value = marker.kwargs[key]
                if not isinstance(value, bool):
                    raise ConfigError(
                        f"{key}={value!r} in @pytest.mark.leakcheck is not a bool. "
                        f"Use {key}=True or {key}=False."
                    )
                values[key] = value
                break
    watch = session.watch
    for marker in markers:
        watch = watch | resolve_specs(marker.args)
    explicit = bool(markers)
    if explicit:
        checked = values.get("enabled", True)
        strict = values.get("strict", True)
        reason = "marked" if checked else "opted out with enabled=False"
    else:
        checked = session.check_all
        strict = session.strict
        reason = "--leakcheck" if checked else "not selected"
    return ItemSettings(
        checked=checked, strict=strict, explicit=explicit, watch=watch, reason=reason
    )
