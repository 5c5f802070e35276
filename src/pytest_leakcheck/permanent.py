"""What others keep in the collector's permanent generation, and what it would hold without us.

``gc.freeze()`` and ``gc.unfreeze()`` move *every* tracked object; CPython has no call that
freezes a chosen set, so a window that unfreezes at its end also unfreezes whatever was frozen
before it. Two kinds of "before":

* CPython 3.12's collector itself moves the immortal objects it meets (a few hundred tuples of the
  standard library's deep-frozen code) into the permanent generation. They can never be freed, so
  it changes nothing the collector does whether they sit there or in the oldest generation, and
  the collector moves them back by itself at its next full collection. A frozen window runs on top
  of them, and ``gc.get_freeze_count()`` keeps counting them as the test would see them.
* An application that calls ``gc.freeze()`` itself (pre-fork servers do, at import) wants its
  objects to stay frozen: unfreezing them would show them to ``gc.get_objects()`` and let the
  collector free them, and freezing everything again would keep every later object from ever being
  collected. While an application's objects are frozen, checks compare the unfrozen heap instead,
  and leave the permanent generation alone.
"""

from __future__ import annotations

from .heap import real_get_freeze_count

# A freeze made by code (a sitecustomize, before pytest loads its plugins) holds at least the
# whole start-up heap, several thousand objects; the interpreter's own are a few hundred.
_INTERPRETER_AT_MOST = 2000

# Counting walks the whole permanent list: nothing when only the interpreter's few hundred objects
# are there, milliseconds when an application froze a large heap. Once an application's freeze is
# seen, it is counted again only every this many checks: a stale answer only keeps the exact
# (whole-heap) comparison a little longer.
RECOUNT_EVERY = 50


class Permanent:
    """The permanent generation as the code under test would see it without the windows.

    ``interpreter``: the objects the interpreter itself keeps there, counted when the plugin was
    imported, before any test code ran (3.12: 375 on 3.12.1; 0 on 3.10, 3.11 and 3.13). Not tied
    to a version: a later one that does the same is handled alike.

    ``owed``: how many of them a window's unfreeze moved to the oldest generation, where they stay
    until the collector's next full collection; ``gc.get_freeze_count()`` still counts them. A test
    that calls ``freeze`` or ``unfreeze`` itself takes the count over.
    """

    def __init__(self) -> None:
        count = real_get_freeze_count()
        self.interpreter = count if count <= _INTERPRETER_AT_MOST else 0
        self.owed = 0
        self._recount_in = 0

    def others(self) -> int:
        """Objects that someone other than the windows put there (a walk of that list only)."""
        return real_get_freeze_count()

    def application_froze(self) -> bool:
        """Whether more than the interpreter's own objects are frozen (see ``RECOUNT_EVERY``)."""
        if self._recount_in > 0:
            self._recount_in -= 1
            return True
        froze = self.others() > self.interpreter
        self._recount_in = RECOUNT_EVERY if froze else 0
        return froze

    def unfrozen_by_window(self, others: int) -> None:
        self.owed = max(self.owed, others)

    def taken_over(self) -> None:
        self.owed = 0

    def count(self, real: int) -> int:
        return max(real, self.owed)


permanent = Permanent()


def interpreter_frozen() -> int:
    """How many objects the interpreter itself keeps in the permanent generation (3.12)."""
    return permanent.interpreter
