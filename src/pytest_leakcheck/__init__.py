"""pytest-leakcheck: find the objects a test leaves alive, and what holds them.

The public API imports no pytest::

    from pytest_leakcheck import check_leaks

    with check_leaks(User) as check:
        connect_and_disconnect()
    for group in check.findings.leaks:
        print(group.count, group.type, group.kind, group.path)
"""

from .checker import LeakCheck, check_leaks
from .findings import Findings, LeakGroup, judge
from .kinds import KINDS as ROOT_KINDS
from .options import Options
from .retention import Retention
from .watch import WatchFilter

__all__ = [
    "ROOT_KINDS",
    "Findings",
    "LeakCheck",
    "LeakGroup",
    "Options",
    "Retention",
    "WatchFilter",
    "check_leaks",
    "judge",
]
