"""Inner test module for tests/test_pytest_holders.py: a test class instance and a timer."""

import threading

import pytest


class User:
    def tick(self):
        pass


class TestHeld:
    @pytest.mark.leakcheck
    def test_instance_and_timer(self):
        self.user = User()
        t = threading.Timer(60, self.user.tick)
        t.daemon = True
        t.start()

    @pytest.mark.leakcheck
    def test_instance_only(self):
        self.user = User()
