"""The seed's scenario under the plugin: 5 users connect, then disconnect.

Against the leaky module the first test fails, and its report names the ``User`` and the
``threading.Timer`` that keeps it; against the fixed module the second test passes.
"""

import pytest

from examples import user_session, user_session_fixed


@pytest.mark.leakcheck
def test_users_are_released_on_disconnect():
    for i in range(5):
        user_session.new_connect(f"user_{i}")
    for i in range(5):
        user_session.disconnect(f"user_{i}")


@pytest.mark.leakcheck
def test_users_are_released_on_disconnect_fixed():
    for i in range(5):
        user_session_fixed.new_connect(f"user_{i}")
    for i in range(5):
        user_session_fixed.disconnect(f"user_{i}")
