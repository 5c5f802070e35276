"""What the plugin keeps on pytest's config and on each test item, under these keys."""

from __future__ import annotations

from typing import Any

import pytest

from . import config as cfg
from .checker import LeakCheck
from .expectations import Expected

SETTINGS_KEY = pytest.StashKey[cfg.Settings]()
ITEM_KEY = pytest.StashKey[cfg.ItemSettings]()
CHECK_KEY = pytest.StashKey[LeakCheck]()
FAILED_KEY = pytest.StashKey[str]()
# The check's findings as report data, and the graph files written, once the window has ended.
JUDGED_KEY = pytest.StashKey[tuple[dict[str, Any], list[str]]]()
# Objects a test that is not checked for leaks still named with leakcheck.expect_released().
EXPECTED_KEY = pytest.StashKey[Expected]()
