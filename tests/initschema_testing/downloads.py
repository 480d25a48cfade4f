"""What the download tests share: an HTTP server on 127.0.0.1 only, run in a thread of the
test's own process, and a toy checkpoint to serve and to load by its address."""

from __future__ import annotations

import io
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import torch

import initschema as ins
from initschema_testing import zoo

KIT = zoo.kits()["initschema"]


class LocalServer:
    """An HTTP server (HTTPS with ``tls``) on a free port of 127.0.0.1, at ``url``; every
    GET goes to :meth:`get` with the request's handler, which answers 404 unless a subclass
    says otherwise. Log lines are dropped."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                server.get(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        scheme = "https" if tls is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def get(self, handler: BaseHTTPRequestHandler) -> None:
        handler.send_error(404)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def toy_checkpoint(seed: int) -> tuple[dict[str, torch.Tensor], bytes]:
    """The state dict of ``zoo.toy_net`` initialized from ``seed``, and the bytes
    ``torch.save`` writes of it."""
    torch.manual_seed(seed)
    state = zoo.toy_net(KIT).state_dict()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return state, buffer.getvalue()


def toy_net_from(url: str) -> torch.nn.Module:
    """A new ``zoo.toy_net`` initialized by a Pretrained rule from ``url``."""
    model = zoo.toy_net(KIT)
    ins.initialize(model, dict(type="Pretrained", checkpoint=url))
    return model
