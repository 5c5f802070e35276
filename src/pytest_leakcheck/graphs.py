"""Retention paths as pictures: Graphviz DOT drawn by objgraph, and SVG when ``dot`` exists."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from itertools import pairwise

import objgraph

# objgraph escapes quotes, backslashes and newlines in labels; an object's repr may hold any
# other control character too, which Graphviz would choke on or print raw.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


def chain_dot(chain: Sequence[object], root: str, labels: Sequence[str] = ()) -> str | None:
    """The chain root-first, drawn by objgraph.show_chain, the root highlighted.

    ``labels[i]`` names the reference from ``chain[i]`` to ``chain[i + 1]``; it is written on
    the edges objgraph leaves bare (an attribute kept in the instance itself, as 3.13 keeps
    most, has no ``__dict__`` entry for objgraph to name).
    """
    if not chain:
        return None
    first = chain[0]
    out = io.StringIO()
    try:
        objgraph.show_chain(
            list(chain), backrefs=False, output=out, highlight=lambda obj: obj is first
        )
    except Exception:  # a picture is a bonus: never let it break the report
        return None
    finally:
        first = None
    dot = _CONTROL.sub(lambda m: f"\\\\x{ord(m.group()):02x}", out.getvalue())
    for (parent, child), label in zip(pairwise(chain), labels, strict=False):
        bare = f"  o{id(parent)} -> o{id(child)};"
        text = _quoted(label.removeprefix("."))
        dot = dot.replace(bare, f'  o{id(parent)} -> o{id(child)} [label="{text}"];', 1)
    title = _quoted(root)
    return dot.replace("digraph ObjectGraph {", f'digraph ObjectGraph {{\n  label="{title}";', 1)


def write(directory: str, name: str, dot: str) -> tuple[str, str | None]:
    """Write ``name``.dot, and ``name``.svg when Graphviz's ``dot`` is installed."""
    os.makedirs(directory, exist_ok=True)
    base = os.path.join(directory, _UNSAFE_NAME.sub("_", name).strip("_")[:150])
    dot_path = base + ".dot"
    with open(dot_path, "w", encoding="utf-8") as fh:
        fh.write(dot)
    program = shutil.which("dot")
    if program is None:
        return dot_path, None
    svg_path = base + ".svg"
    try:
        subprocess.run(
            [program, "-Tsvg", "-o", svg_path, dot_path],
            check=True,
            capture_output=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return dot_path, None
    return dot_path, svg_path


def _quoted(text: str) -> str:
    """Text for a double-quoted DOT string."""
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    return text.replace("\\", "\\\\").replace('"', '\\"')
