"""Checkpoints by address: ``http(s)://``, ``torchvision://NAME``, ``open-mmlab://NAME``.

A URL is downloaded once into the cache (``$INITSCHEMA_HOME/checkpoints``, else
``$XDG_CACHE_HOME/initschema/checkpoints``, else ``~/.cache/initschema/checkpoints``)
through a ``.partial`` file that is renamed into place only when complete and,
when the file name carries a hash (``resnet50-0676ba61.pth``), only when the
SHA-256 of the content starts with it, as torch.hub checks. A dropped
connection is resumed with an HTTP Range request. ``torchvision://`` and
``open-mmlab://`` names resolve through the same name → URL table MMEngine uses.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from functools import cache
from pathlib import Path
from typing import Any

from .errors import InitCfgError, did_you_mean

__all__ = ["ProgressBar", "cache_dir", "resolve_checkpoint"]

_HASH = re.compile(r"-([a-f0-9]{6,})\.")
_ATTEMPTS = 3
_CHUNK = 1 << 20
_SCHEMES = {
    "torchvision://": "torchvision",
    "modelzoo://": "torchvision",
    "open-mmlab://": "open-mmlab",
    "openmmlab://": "open-mmlab",
}


def cache_dir() -> Path:
    """Where downloaded checkpoints are kept."""
    if home := os.environ.get("INITSCHEMA_HOME"):
        return Path(home) / "checkpoints"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "initschema" / "checkpoints"


@cache
def _table() -> dict[str, dict[str, str]]:
    with open(Path(__file__).with_name("hub.json"), encoding="utf-8") as file:
        return json.load(file)  # type: ignore[no-any-return]


def url_for(name: str, where: str) -> str:
    """The URL behind ``torchvision://NAME`` or ``open-mmlab://NAME``."""
    scheme = next(s for s in _SCHEMES if name.startswith(s))
    table, key = _table()[_SCHEMES[scheme]], name[len(scheme) :]
    if _SCHEMES[scheme] == "open-mmlab":
        key = _table()["open-mmlab aliases"].get(key, key)
    if key not in table:
        raise InitCfgError.single(
            where,
            f"unknown checkpoint name {name!r}{did_you_mean(key, table) or ';'} known "
            f"{scheme} names: {', '.join(sorted(table)[:12])}, … ({len(table)} in all).",
        )
    return table[key]


def resolve_checkpoint(checkpoint: str, where: str) -> str:
    """A local path for ``checkpoint``, downloading it first when it is an address."""
    if checkpoint.startswith(tuple(_SCHEMES)):
        return fetch(url_for(checkpoint, where), where)
    if checkpoint.startswith(("http://", "https://")):
        return fetch(checkpoint, where)
    if re.match(r"^[a-z][a-z0-9+.-]*://", checkpoint):
        raise InitCfgError.single(
            where,
            f"checkpoint {checkpoint!r} has a scheme initschema cannot read; use a local path, "
            f"http(s)://, {', '.join(_SCHEMES)}.",
        )
    return os.path.expanduser(checkpoint)


def fetch(url: str, where: str) -> str:
    """The cached copy of ``url``, downloaded now if it is not cached yet."""
    name = os.path.basename(urllib.parse.urlparse(url).path) or "checkpoint"
    dest = cache_dir() / name
    if dest.is_file():
        return str(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(name + ".partial")
    error: Exception | None = None
    for _ in range(_ATTEMPTS):
        try:
            _download(url, partial)
            error = None
            break
        except (urllib.error.URLError, OSError, http.client.HTTPException) as caught:
            error = caught
            if isinstance(caught, urllib.error.HTTPError):
                caught.close()  # it holds the response open
                if caught.code < 500:
                    break  # the server said no: asking again will not help
    if error is not None:
        raise InitCfgError.single(
            where,
            f"could not download {url} ({_reason(error)}); download it yourself and put it at "
            f"{dest}, where it will be found.",
        )
    if match := _HASH.search(name):
        digest = _sha256(partial)
        if not digest.startswith(match.group(1)):
            partial.unlink()
            raise InitCfgError.single(
                where,
                f"the download of {url} is corrupt: its SHA-256 is {digest[:16]}…, but the file "
                f"name promises {match.group(1)}…; it was deleted, try again.",
            )
    os.replace(partial, dest)
    return str(dest)


def _reason(error: Exception | None) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return str(error.reason)
    return str(error) or type(error).__name__


def _download(url: str, partial: Path) -> None:
    """Append to ``partial`` from where it stops; raise when the body ends early."""
    offset = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    with urllib.request.urlopen(request, timeout=30) as response:
        if offset and response.status != 206:  # the server ignored Range: start over
            offset = 0
        length = response.headers.get("Content-Length")
        expected = offset + int(length) if length is not None else None
        label = f"downloading {os.path.basename(url)}"
        with (
            open(partial, "ab" if offset else "wb") as file,
            ProgressBar(label, expected, threshold=100 * 2**20) as advance,
        ):
            while chunk := response.read(_CHUNK):
                file.write(chunk)
                advance(len(chunk))
    size = partial.stat().st_size
    if expected is not None and size < expected:
        raise http.client.IncompleteRead(b"", expected - size)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class ProgressBar:
    """A rich progress bar on a terminal when ``total`` bytes exceed ``threshold``; else
    nothing. Used as ``with ProgressBar(label, total) as advance: advance(n)``."""

    def __init__(self, label: str, total: int | None, threshold: int = 256 * 2**20) -> None:
        self.bar: Any = None
        if total and total > threshold and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import Progress

            self.bar = Progress(console=Console(stderr=True), transient=True)
            self.task = self.bar.add_task(label, total=total)

    def __enter__(self) -> ProgressBar:
        if self.bar is not None:
            self.bar.start()
        return self

    def __call__(self, amount: int) -> None:
        if self.bar is not None:
            self.bar.advance(self.task, amount)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()
