"""The seed's HTTP server, with the standard library: ``/userEnter`` and ``/userLeave``.

``GET /userEnter?name=user_1`` creates a ``User`` (``user_session``'s: big data and a timer that
logs the name every second) and keeps it in the server's ``users`` dict; ``GET /userLeave`` forgets
it. The leaky server only deletes the entry, as the seed does, so each user's running timer keeps
it alive; the fixed one (``fixed=True``) stops the timer first. ``name`` defaults to ``user_1``.

    python -m examples.user_server [--port 3120] [--fixed]
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from .user_session import User

log = logging.getLogger(__name__)


class UserServer(ThreadingHTTPServer):
    """Keeps its users on itself, so that two servers in one process share nothing."""

    def __init__(self, address: tuple[str, int], *, fixed: bool = False) -> None:
        super().__init__(address, UserRequestHandler)
        self.fixed = fixed
        self.users: dict[str, User] = {}
        self.users_lock = threading.Lock()  # each request runs in a thread of its own

    def user_enter(self, name: str) -> str:
        with self.users_lock:
            self.users[name] = User(name)
        return "user connected"

    def user_leave(self, name: str) -> str:
        with self.users_lock:
            user = self.users.pop(name, None)
        # The fix: stop the timer before forgetting the user. Without it, the leak.
        if self.fixed and user is not None:
            user.clear_timer()
        return "user disconnected"


class UserRequestHandler(BaseHTTPRequestHandler):
    server: UserServer

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        name = parse_qs(url.query).get("name", ["user_1"])[0]
        if url.path == "/userEnter":
            text = self.server.user_enter(name)
        elif url.path == "/userLeave":
            text = self.server.user_leave(name)
        else:
            self.send_error(404)
            return
        body = text.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        # To logging rather than stderr, like the users' own log lines.
        log.info("%s %s", self.address_string(), format % args)


def make_server(port: int = 3120, *, fixed: bool = False, host: str = "127.0.0.1") -> UserServer:
    """A bound server (port 0 picks a free one); run it with ``serve_forever()``."""
    return UserServer((host, port), fixed=fixed)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m examples.user_server",
        description="The seed's user server: GET /userEnter and /userLeave, ?name=user_1.",
    )
    parser.add_argument("--port", type=int, default=3120)
    parser.add_argument("--fixed", action="store_true", help="stop each user's timer on leave")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(threadName)s %(message)s")
    with make_server(args.port, fixed=args.fixed) as server:
        host, port = server.server_address[:2]
        kind = "fixed" if args.fixed else "leaky"
        log.info("%s server on http://%s:%s/userEnter and /userLeave", kind, host, port)
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C stops it
            server.serve_forever()


if __name__ == "__main__":
    main()
