"""The seed's HTTP server under the plugin: 5 users connect, then disconnect, over real HTTP.

Each server runs in a background thread for the whole module, so it, its thread and its socket
belong to a module-scoped fixture and are not the test's leak. Against the leaky server the first
test fails, and its report names the ``User`` and the ``threading.Timer`` that keeps it; against
the fixed server the second test passes.
"""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Iterator

import pytest

from examples.user_server import UserServer, make_server


def serve(fixed: bool) -> Iterator[UserServer]:
    server = make_server(0, fixed=fixed)  # a free port on 127.0.0.1
    thread = threading.Thread(target=server.serve_forever, name="user-server", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="module")
def leaky_server() -> Iterator[UserServer]:
    yield from serve(fixed=False)


@pytest.fixture(scope="module")
def fixed_server() -> Iterator[UserServer]:
    yield from serve(fixed=True)


def get(server: UserServer, route: str, name: str) -> str:
    host, port = server.server_address[:2]
    url = f"http://{host}:{port}/{route}?name={name}"
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def connect_and_disconnect(server: UserServer) -> None:
    for i in range(5):
        assert get(server, "userEnter", f"user_{i}") == "user connected"
    for i in range(5):
        assert get(server, "userLeave", f"user_{i}") == "user disconnected"
    assert server.users == {}


@pytest.mark.leakcheck
def test_users_are_released_on_disconnect(leaky_server: UserServer) -> None:
    connect_and_disconnect(leaky_server)


@pytest.mark.leakcheck
def test_users_are_released_on_disconnect_fixed(fixed_server: UserServer) -> None:
    connect_and_disconnect(fixed_server)
