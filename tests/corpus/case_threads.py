import threading
import traceback


class Poller:
    """Polls until told to stop: a thread whose running frame holds ``self``."""

    def __init__(self):
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.wait(0.02):
            pass


class Failure:
    """Keeps the traceback of an error it handled: frames and their locals."""

    def __init__(self):
        try:
            raise ValueError("boom")
        except ValueError as exc:
            self.text = "".join(traceback.format_exception(exc))


def test_leak_thread():
    Poller()


def test_clean_thread():
    poller = Poller()
    poller.stop.set()
    poller.thread.join()


def test_clean_traceback_kept_as_text():
    assert "boom" in Failure().text
