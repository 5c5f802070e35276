from __future__ import annotations

import pytest


@pytest.fixture
def pytester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    # Inner runs load pytest-asyncio, which warns on every run whose ini leaves its loop scope
    # unset, and pytest-randomly, which would shuffle inner tests whose order some of these
    # tests rely on (tests/test_compat.py switches it back on with "-p randomly"). pytester
    # drops PYTEST_ADDOPTS when it starts, so it is set again here.
    monkeypatch.setenv(
        "PYTEST_ADDOPTS", "-o asyncio_default_fixture_loop_scope=function -p no:randomly"
    )
    return pytester
