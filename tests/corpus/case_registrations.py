import atexit
import functools
import logging
import sched
import signal
import time

# A server's own scheduler, made once for the process.
SCHEDULER = sched.scheduler(time.monotonic, time.sleep)
REGISTRY = []


class Connection:
    def __init__(self):
        self.data = bytearray(100_000)

    def expire(self):
        pass

    def on_signal(self, signum, frame):
        pass

    @functools.cache  # noqa: B019 - the leak this case is about
    def lookup(self, key):
        return key * 2


class ConnectionLog(logging.Handler):
    def __init__(self, connection):
        super().__init__()
        self.connection = connection

    def emit(self, record):
        pass


def test_leak_sched_event():
    SCHEDULER.enter(3600, 1, Connection().expire)


def test_clean_sched_event():
    event = SCHEDULER.enter(3600, 1, Connection().expire)
    SCHEDULER.cancel(event)


def test_leak_atexit_registration():
    atexit.register(Connection().expire)


def test_clean_atexit_registration():
    connection = Connection()
    atexit.register(connection.expire)
    atexit.unregister(connection.expire)


def test_leak_logging_handler():
    logging.getLogger("corpus").addHandler(ConnectionLog(Connection()))


def test_clean_logging_handler():
    handler = ConnectionLog(Connection())
    logger = logging.getLogger("corpus.fixed")
    logger.addHandler(handler)
    logger.removeHandler(handler)


def test_leak_signal_handler():
    signal.signal(signal.SIGUSR1, Connection().on_signal)


def test_clean_signal_handler():
    previous = signal.signal(signal.SIGUSR1, Connection().on_signal)
    signal.signal(signal.SIGUSR1, previous)


def test_suspect_module_global():
    REGISTRY.append(Connection())


def test_clean_module_global():
    REGISTRY.append(Connection())
    REGISTRY.pop()


def test_suspect_cache_on_a_method():
    Connection().lookup(3)


def test_clean_cache_on_a_method():
    Connection().lookup(3)
    Connection.lookup.cache_clear()
