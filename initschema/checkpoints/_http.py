"""The HTTP side of a download: redirects to http(s) only, and an overall deadline that
ends a read blocked anywhere once connected (the TCP connect and the TLS handshake have
the socket timeout, which a server sending a byte at a time can stretch)."""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
import urllib.parse
import urllib.request
from typing import IO, Any

__all__ = ["Redirects", "Refused", "Watchdog", "WatchedHTTP", "WatchedHTTPS"]


class Refused(Exception):
    """A download stopped for a reason asking again cannot change."""


class Redirects(urllib.request.HTTPRedirectHandler):
    """Follows redirects to http(s) only, without reading the redirect's own body."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        fp.close()
        if urllib.parse.urlsplit(newurl).scheme not in ("http", "https"):
            raise Refused(f"the server redirected it to {newurl}, which is not http(s)")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class Watchdog:
    """The deadline of one download: when it passes, the download's sockets are shut
    down, which ends a read blocked in any phase (headers, body, redirects) at once."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.expired = False
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        self.timer = threading.Timer(seconds, self.expire)
        self.timer.daemon = True

    def __enter__(self) -> Watchdog:
        self.timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.timer.cancel()
        with self.lock:
            self.sockets.clear()

    def left(self) -> float:
        return max(self.deadline - time.monotonic(), 0.001)

    def watch(self, sock: socket.socket) -> None:
        with self.lock:
            self.sockets.append(sock)
            if self.expired:
                _shut(sock)

    def expire(self) -> None:
        with self.lock:
            self.expired = True
            for sock in self.sockets:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed
        sock.shutdown(socket.SHUT_RDWR)


class WatchedHTTP(urllib.request.HTTPHandler):
    def __init__(self, watchdog: Watchdog) -> None:
        super().__init__()
        self.watchdog = watchdog

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_watched(http.client.HTTPConnection, self.watchdog), req)


class WatchedHTTPS(urllib.request.HTTPSHandler):
    def __init__(self, watchdog: Watchdog) -> None:
        super().__init__()
        self.watchdog = watchdog

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_watched(http.client.HTTPSConnection, self.watchdog), req)


def _watched(base: type[http.client.HTTPConnection], watchdog: Watchdog) -> Any:
    """``base`` with its socket handed to ``watchdog`` once connected."""

    class Watched(base):  # type: ignore[valid-type, misc]
        def connect(self) -> None:
            super().connect()
            watchdog.watch(self.sock)

    return Watched
