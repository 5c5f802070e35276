import asyncio
import threading

import pytest


@pytest.fixture(scope="module")
def loop_thread():
    """An event loop running in a thread of its own for the whole module, as a server keeps one."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="corpus-loop", daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()
