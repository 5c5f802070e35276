"""Replacements for standard-library functions that the code under check cannot tell apart."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any


def transparent(impl: Callable[..., Any], real: Callable[..., Any]) -> Callable[..., Any]:
    """``impl(real, *args, **kwargs)`` dressed as ``real``.

    A ``functools.partial``, not a Python function: calling a Python function makes CPython
    save the caller's stack, after which ``gc.get_referrers`` sees a running coroutine as a
    referrer of its own locals (anyio's refcycle tests noticed). A C-level callable changes
    nothing the caller can see.
    """
    wrapper = functools.partial(impl, real)
    for name in ("__name__", "__qualname__", "__doc__", "__module__"):
        setattr(wrapper, name, getattr(real, name, None))
    wrapper.__wrapped__ = real  # type: ignore[attr-defined]
    wrapper.__leakcheck_wrapper__ = True  # type: ignore[attr-defined]
    return wrapper
