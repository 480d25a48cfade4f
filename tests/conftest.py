"""Shared fixtures: the MMEngine reference (skipped when it is not installed)."""

from __future__ import annotations

import logging
import os
from typing import Any

import pytest
from hypothesis import settings

# The shared helpers' asserts explain a failure as the tests' own do.
pytest.register_assert_rewrite("initschema_testing")

# Property tests draw a fixed sequence of inputs by default (the README's test command,
# CI), so that a change passes or fails on its own code, not on what one run happened to
# draw; HYPOTHESIS_PROFILE=explore draws new inputs on every run, to look for bugs.
settings.register_profile("fixed", derandomize=True, print_blob=True)
settings.register_profile("explore", print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fixed"))


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may open a connection anywhere but this machine's loopback address."""
    import socket

    connect = socket.socket.connect

    def guarded(sock: socket.socket, address: Any) -> Any:
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and host not in ("127.0.0.1", "::1", "localhost"):
            raise OSError(f"tests may only connect to 127.0.0.1, not {host!r}")
        return connect(sock, address)

    lookup = socket.getaddrinfo

    def guarded_lookup(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in ("127.0.0.1", "::1", "localhost", None):
            raise OSError(f"tests may only look up 127.0.0.1, not {host!r}")
        return lookup(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_lookup)


@pytest.fixture(autouse=True)
def _registry_restored() -> Any:
    """Initializers a test registers are gone after it, so tests stay independent."""
    from initschema.cfg.initializer import WEIGHT_INITIALIZERS

    saved = dict(WEIGHT_INITIALIZERS._classes)
    yield
    WEIGHT_INITIALIZERS._classes.clear()
    WEIGHT_INITIALIZERS._classes.update(saved)


@pytest.fixture(scope="session")
def mm() -> Any:
    """``mmengine.model`` (with its logger kept quiet), or skip the test."""
    model = pytest.importorskip("mmengine.model", reason="mmengine-lite is not installed")
    from mmengine.logging import MMLogger

    MMLogger.get_current_instance().setLevel(logging.ERROR)
    return model
