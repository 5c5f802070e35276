"""A Python port of the seed: a server keeps connected users in a dict, and forgets their timers.

``new_connect(name)`` creates a ``User`` with two big pieces of data and a timer that logs its name
every second (the seed's ``setInterval``). ``disconnect(name)`` only removes the dict entry, as in
the seed, so the running timer's callback keeps the ``User``, and all it holds, alive.
``user_session_fixed`` is the same module with the seed's fix: stop the timer on disconnect.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)

users: dict[str, User] = {}


class RepeatingTimer:
    """``setInterval`` for Python: a ``threading.Timer`` that re-arms itself after each tick."""

    def __init__(self, interval: float, function: object) -> None:
        self.interval = interval
        self.function = function
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self._stopped = False

    def start(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self._timer = threading.Timer(self.interval, self._run)
            # Daemon, so that a leaked timer cannot keep the interpreter from exiting.
            self._timer.daemon = True
            self._timer.start()

    def _run(self) -> None:
        self.function()  # type: ignore[operator]
        self.start()

    def cancel(self) -> None:
        with self._lock:
            self._stopped = True
            if self._timer is not None:
                self._timer.cancel()


class User:
    def __init__(self, username: str) -> None:
        self.username = username
        self.big_data1 = "bigDataHello" * 1_000_000  # 12 MB, as in the seed
        self.big_data2 = ("bigDataHello," * 1_000_000).split(",")  # a million strings
        self.timer = RepeatingTimer(1.0, self.log_name)
        self.timer.start()

    def log_name(self) -> None:
        log.info("%s", self.username)

    def clear_timer(self) -> None:
        self.timer.cancel()


def new_connect(username: str) -> str:
    users[username] = User(username)
    return "user connected"


def disconnect(username: str) -> str:
    # The leak: the user is forgotten, but its timer is never stopped.
    users.pop(username, None)
    return "user disconnected"
