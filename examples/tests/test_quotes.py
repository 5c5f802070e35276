"""The seed's real case under the plugin: 5 quote clients connect, then go offline.

The event loop runs in a background thread for the whole module, as a server's loop would: a loop
closed at the end of the test would drop its pending tasks, and the leak with them. Against the
leaky connection the first test fails, and its report names the ``QuoteConnection`` and the
``asyncio.Task`` running its heartbeat; against the fixed one the second test passes.

The leaky test comes first on purpose: the module's fixtures are torn down in the teardown of its
last test, inside that test's window, and the loop's teardown cancels the leftover heartbeats.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from typing import Any

import pytest

from examples.quotes import Quote, QuoteFeed, QuoteService

SYMBOLS = ("AAPL", "MSFT", "TSLA")
BUFFER = 10_000  # quotes kept per symbol: 3 x 10,000 lines of 64 bytes, ~3 MB per connection


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="quote-loop", daemon=True)
    thread.start()
    try:
        yield loop
    finally:
        # The leaky test's heartbeats are still running: stop them, as asyncio.run() would.
        run(loop, cancel_all_tasks())
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()


@pytest.fixture(scope="module")
def feed() -> QuoteFeed:
    return QuoteFeed()


def run(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=60)


async def cancel_all_tasks() -> None:
    tasks = asyncio.all_tasks() - {asyncio.current_task()}
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def clients_come_and_go(service: QuoteService) -> None:
    for i in range(5):
        service.connect(f"client_{i}", SYMBOLS)
    for seq in range(BUFFER):
        for symbol in SYMBOLS:
            service.feed.publish(Quote(symbol, seq, 100 + seq / 100))
    for i in range(5):
        await service.disconnect(f"client_{i}")
    # Both versions unsubscribe: the feed holds nothing, only the heartbeat differs.
    assert service.connections == {}
    assert service.feed.subscribers == {}


@pytest.mark.leakcheck
def test_connections_are_released_on_disconnect(
    loop: asyncio.AbstractEventLoop, feed: QuoteFeed
) -> None:
    run(loop, clients_come_and_go(QuoteService(feed, buffer_size=BUFFER)))


@pytest.mark.leakcheck
def test_connections_are_released_on_disconnect_fixed(
    loop: asyncio.AbstractEventLoop, feed: QuoteFeed
) -> None:
    run(loop, clients_come_and_go(QuoteService(feed, fixed=True, buffer_size=BUFFER)))
