import threading

import pytest


class Session:
    """A user session with a heartbeat: a timer that re-arms itself every ``period`` seconds."""

    def __init__(self, period):
        self.period = period
        self.data = bytearray(100_000)
        self.lock = threading.Lock()
        self.stopped = False
        self.timer = None
        self.beats = 0
        self._arm()

    def _arm(self):
        with self.lock:
            if self.stopped:
                return
            self.timer = threading.Timer(self.period, self._beat)
            self.timer.daemon = True
            self.timer.start()

    def _beat(self):
        self.beats += 1
        self._arm()

    def close(self, *, stop_timer):
        if stop_timer:
            with self.lock:
                self.stopped = True
                timer = self.timer
            timer.cancel()
            timer.join()


@pytest.mark.parametrize("period", [0.05, 1.0], ids=["fast_chain", "heartbeat"])
def test_leak_timer(period):
    Session(period).close(stop_timer=False)


@pytest.mark.parametrize("period", [0.05, 1.0], ids=["fast_chain", "heartbeat"])
def test_clean_timer(period):
    Session(period).close(stop_timer=True)
