import threading
import time

import pytest


class Beacon:
    """Sends a beacon every 20 ms, for ever: a fast timer chain nobody stops."""

    def __init__(self):
        self.data = bytearray(100_000)
        self._arm()

    def _arm(self):
        timer = threading.Timer(0.02, self._beat)
        timer.daemon = True
        timer.start()

    def _beat(self):
        self.echo = Echo(self)  # a new watched object every tick, made in the timer's thread
        self._arm()


class Echo:
    def __init__(self, beacon):
        self.beacon = beacon


@pytest.mark.leakcheck(enabled=False)
def test_opted_out_and_leaves_a_fast_chain_running():
    Beacon()


def test_failing_leaves_a_fast_chain_running():
    Beacon()
    raise AssertionError("this test fails by itself, so it is not checked")


def test_clean_while_chains_tick_on():
    Echo(None)
    time.sleep(0.1)  # the chains above, if they ran before, tick a few times meanwhile
