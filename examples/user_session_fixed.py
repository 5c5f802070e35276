"""The seed's fix: ``disconnect`` stops the user's timer before forgetting the user.

The ``User`` and its timer are those of ``user_session`` (read that module first); only the
bookkeeping of connected users differs.
"""

from __future__ import annotations

from .user_session import User

users: dict[str, User] = {}


def new_connect(username: str) -> str:
    users[username] = User(username)
    return "user connected"


def disconnect(username: str) -> str:
    # The fix: stop the timer before forgetting the user (the seed's clearTimer()).
    user = users.pop(username, None)
    if user is not None:
        user.clear_timer()
    return "user disconnected"
