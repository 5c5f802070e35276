"""Report files: written whole or not at all, and paths checked before the session spends time."""

from __future__ import annotations

import contextlib
import os
import tempfile


class UnwritableError(OSError):
    """A report path that cannot be written; the message says why and what to do."""


def check_writable(path: str, what: str) -> None:
    """Fail early, before any test runs, for a report path that could not be written at the end."""
    directory = os.path.dirname(os.path.abspath(path)) or "."
    if os.path.isdir(path):
        raise UnwritableError(f"the {what} path {path} is a directory; give a file name")
    if not os.path.isdir(directory):
        raise UnwritableError(
            f"cannot write the {what} to {path}: the directory {directory} does not exist; "
            f"create it or choose another path"
        )
    if not os.access(directory, os.W_OK | os.X_OK):
        raise UnwritableError(
            f"cannot write the {what} to {path}: the directory {directory} is not writable; "
            f"choose another path"
        )


def write_atomic(path: str, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it over ``path``.

    A reader (a CI step, a concurrent run) sees the old file or the new one, never half of one.
    """
    directory = os.path.dirname(os.path.abspath(path))
    fd, temp = tempfile.mkstemp(prefix=".leakcheck-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        # mkstemp makes the file private; a report is as readable as any file the user writes.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temp, 0o666 & ~umask)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
