"""The seed's real case: a quote service whose per-client connection beats, and never stops.

In a TV platform's middle tier, the class that handled one client's quote connection ran a
heartbeat timer and did not clear it when the client went offline, so everything the connection
held stayed alive. Here in asyncio: a ``QuoteFeed`` publishes quotes; a ``QuoteConnection`` per
client subscribes to some symbols, keeps the recent quotes of each as lines for its client (a
``QuoteBuffer`` per symbol, a few MB per connection once full) and beats every
``heartbeat_interval`` seconds in a task of its own. ``QuoteService`` is the middle tier: it keeps
the open connections and closes one when its client leaves.

Both versions unsubscribe from the feed on close. ``QuoteConnection.close()`` forgets the heartbeat
task, and the pending task keeps the connection and its buffers alive;
``FixedQuoteConnection.close()`` cancels it and waits for it to end. ``QuoteService(feed,
fixed=True)`` uses the fixed one.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Quote:
    symbol: str
    seq: int
    price: float


QuoteCallback = Callable[[Quote], None]


class QuoteFeed:
    """The publisher: every quote goes to the callbacks subscribed to its symbol."""

    def __init__(self) -> None:
        self.subscribers: dict[str, list[QuoteCallback]] = {}

    def subscribe(self, symbol: str, callback: QuoteCallback) -> None:
        self.subscribers.setdefault(symbol, []).append(callback)

    def unsubscribe(self, symbol: str, callback: QuoteCallback) -> None:
        callbacks = self.subscribers.get(symbol, [])
        if callback in callbacks:
            callbacks.remove(callback)
        if not callbacks:
            self.subscribers.pop(symbol, None)

    def publish(self, quote: Quote) -> None:
        for callback in list(self.subscribers.get(quote.symbol, ())):
            callback(quote)


class QuoteBuffer:
    """The last ``size`` quotes of one symbol, as fixed-width lines ready to send to the client."""

    LINE = 64

    def __init__(self, symbol: str, size: int) -> None:
        self.symbol = symbol
        self.lines: deque[bytes] = deque(maxlen=size)

    def add(self, quote: Quote) -> None:
        line = f"{quote.symbol} {quote.seq} {quote.price:.4f}\n".encode()
        self.lines.append(line.rjust(self.LINE))


class QuoteConnection:
    """One client's quote connection: its subscriptions, a buffer per symbol, a heartbeat."""

    def __init__(
        self,
        client: str,
        feed: QuoteFeed,
        *,
        heartbeat_interval: float = 1.0,
        buffer_size: int = 10_000,
    ) -> None:
        self.client = client
        self.feed = feed
        self.heartbeat_interval = heartbeat_interval
        self.buffer_size = buffer_size
        self.subscriptions: set[str] = set()
        self.buffers: dict[str, QuoteBuffer] = {}
        self.last_beat: float | None = None  # loop time of the last heartbeat
        self._heartbeat: asyncio.Task[None] | None = None

    def open(self, symbols: Iterable[str]) -> None:
        """Subscribe and start beating; call it on the event loop."""
        for symbol in symbols:
            self.subscribe(symbol)
        self._heartbeat = asyncio.create_task(self.heartbeat(), name=f"heartbeat {self.client}")

    def subscribe(self, symbol: str) -> None:
        if symbol not in self.subscriptions:
            self.subscriptions.add(symbol)
            self.buffers[symbol] = QuoteBuffer(symbol, self.buffer_size)
            self.feed.subscribe(symbol, self.on_quote)

    def on_quote(self, quote: Quote) -> None:
        self.buffers[quote.symbol].add(quote)

    async def heartbeat(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            self.last_beat = loop.time()  # a real one would ping the client here

    async def close(self) -> None:
        # The leak: the feed lets go of the connection, but the heartbeat task is forgotten.
        for symbol in self.subscriptions:
            self.feed.unsubscribe(symbol, self.on_quote)
        self.subscriptions.clear()


class FixedQuoteConnection(QuoteConnection):
    async def close(self) -> None:
        # The fix: stop the heartbeat, and wait until it has stopped, before letting go.
        task, self._heartbeat = self._heartbeat, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task})
        await super().close()


class QuoteService:
    """The middle tier: one connection per client, closed and forgotten when the client leaves."""

    def __init__(
        self,
        feed: QuoteFeed,
        *,
        fixed: bool = False,
        heartbeat_interval: float = 1.0,
        buffer_size: int = 10_000,
    ) -> None:
        self.feed = feed
        self.connection_class = FixedQuoteConnection if fixed else QuoteConnection
        self.heartbeat_interval = heartbeat_interval
        self.buffer_size = buffer_size
        self.connections: dict[str, QuoteConnection] = {}

    def connect(self, client: str, symbols: Iterable[str]) -> QuoteConnection:
        """Open a connection for ``client``; call it on the event loop."""
        connection = self.connection_class(
            client,
            self.feed,
            heartbeat_interval=self.heartbeat_interval,
            buffer_size=self.buffer_size,
        )
        connection.open(symbols)
        self.connections[client] = connection
        return connection

    async def disconnect(self, client: str) -> None:
        connection = self.connections.pop(client, None)
        if connection is not None:
            await connection.close()
