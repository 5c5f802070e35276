from __future__ import annotations

import pytest


@pytest.fixture
def pytester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    # Inner runs load pytest-asyncio, which warns on every run whose ini leaves its loop scope
    # unset; pytester drops PYTEST_ADDOPTS when it starts, so it is set again here.
    monkeypatch.setenv("PYTEST_ADDOPTS", "-o asyncio_default_fixture_loop_scope=function")
    return pytester
