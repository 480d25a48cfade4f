"""Checkpoints by address: ``http(s)://``, ``torchvision://NAME``, ``open-mmlab://NAME``.

A URL is downloaded once into the cache (``$INITSCHEMA_HOME/checkpoints``, else
``$XDG_CACHE_HOME/initschema/checkpoints``, else ``~/.cache/initschema/checkpoints``),
as ``<folder named by the URL's SHA-256>/<file name>``, through a ``.partial`` file
beside it that is renamed into place only when complete and, when the file name
carries a hash (``resnet50-0676ba61.pth``), only when the SHA-256 of the content
starts with it, as torch.hub checks; the partial file goes whatever happens. A
dropped connection is resumed with an HTTP Range request. One download has an
overall deadline and a size limit (``INITSCHEMA_DOWNLOAD_TIMEOUT``,
``INITSCHEMA_DOWNLOAD_MAX_BYTES``); redirects lead to http(s) only; a URL's
``user:password@`` is sent as Basic authorization, to that URL alone, and shown as
``***@``. ``torchvision://`` and ``open-mmlab://`` names resolve through the same
name → URL table MMEngine uses.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import json
import os
import posixpath
import re
import secrets
import shutil
import urllib.error
import urllib.parse
import urllib.request
from functools import cache
from pathlib import Path

from .._progress import ProgressBar
from ..errors import InitCfgError, did_you_mean, redact
from ._http import Redirects, Refused, Watchdog, WatchedHTTP, WatchedHTTPS

__all__ = [
    "MAX_BYTES_VARIABLE",
    "TIMEOUT_VARIABLE",
    "ProgressBar",
    "cache_dir",
    "resolve_checkpoint",
]

TIMEOUT_VARIABLE = "INITSCHEMA_DOWNLOAD_TIMEOUT"
"""Seconds one download may take in all, retries included (default 3600)."""
MAX_BYTES_VARIABLE = "INITSCHEMA_DOWNLOAD_MAX_BYTES"
"""The largest download accepted, in bytes or with a unit: 512M, 300G (default 256G)."""
_BYTE_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
_HASH = re.compile(r"-([a-f0-9]{6,})\.")
_ATTEMPTS = 3
_CHUNK = 1 << 20
_READ_TIMEOUT = 30.0
_LONGEST_NAME = 160
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
            f"checkpoint {redact(checkpoint)!r} has a scheme initschema cannot read; use a "
            f"local path, http(s)://, {', '.join(_SCHEMES)}.",
        )
    return os.path.expanduser(checkpoint)


def fetch(url: str, where: str) -> str:
    """The cached copy of ``url``, downloaded now if it is not cached yet."""
    shown = redact(url)
    address, authorization = _credentials(url)
    name = posixpath.basename(urllib.parse.urlsplit(address).path)
    if name in ("", ".", ".."):
        raise InitCfgError.single(
            where,
            f"checkpoint URL {shown} does not end in a file name ({name!r}); give the URL of "
            f"the file itself.",
        )
    if len(name.encode()) > _LONGEST_NAME:
        raise InitCfgError.single(
            where,
            f"checkpoint URL {shown} ends in a file name of {len(name.encode())} bytes, longer "
            f"than the {_LONGEST_NAME} the cache takes; download it yourself and name it shorter.",
        )
    # One folder per URL (credentials aside): two URLs never share an entry.
    folder = cache_dir() / hashlib.sha256(address.encode()).hexdigest()[:32]
    dest = folder / name
    if dest.is_file():
        return str(dest)
    seconds, most = _limits(where)
    folder.mkdir(parents=True, exist_ok=True)
    # A name of its own, so that processes downloading the same URL do not mix bytes.
    partial = folder / f"{name}.{secrets.token_hex(4)}.partial"
    partial.touch(exist_ok=False)
    try:
        with Watchdog(seconds) as watchdog:
            error = _Download(address, authorization, partial, name, most).run(watchdog)
        if error is not None:
            raise InitCfgError.single(
                where,
                redact(
                    f"could not download {shown} ({_reason(error)}); download it yourself and "
                    f"put it at {dest}, where it will be found."
                ),
            )
        if match := _HASH.search(name):
            digest = _sha256(partial)
            if not digest.startswith(match.group(1)):
                raise InitCfgError.single(
                    where,
                    f"the download of {shown} is corrupt: its SHA-256 is {digest[:16]}…, but the "
                    f"file name promises {match.group(1)}…; it was deleted, try again.",
                )
        os.replace(partial, dest)
    finally:
        partial.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            folder.rmdir()  # only when empty: nothing came of this download
    return str(dest)


def _credentials(url: str) -> tuple[str, str | None]:
    """``url`` without its ``user:password@``, and the Basic authorization they make."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None
    host = parts.netloc.rpartition("@")[2]
    user = urllib.parse.unquote(parts.username or "")
    secret = urllib.parse.unquote(parts.password or "")
    token = base64.b64encode(f"{user}:{secret}".encode()).decode("ascii")
    return urllib.parse.urlunsplit(parts._replace(netloc=host)), f"Basic {token}"


def _limits(where: str) -> tuple[float, int]:
    """The overall deadline (seconds) and the size limit (bytes) of one download."""
    limits = []
    for variable, default, units, kind, example in (
        (TIMEOUT_VARIABLE, "3600", {"": 1}, "number of seconds", "600"),
        (MAX_BYTES_VARIABLE, "256G", _BYTE_UNITS, "size", "512G"),
    ):
        text = os.environ.get(variable, default)
        match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([a-z]?)\s*", text.lower())
        if match is None or match[2] not in units or float(match[1]) <= 0:
            raise InitCfgError.single(
                where,
                f"{variable}={text!r} is not a positive {kind}; set it like "
                f"{variable}={example}, or unset it.",
            )
        limits.append(float(match[1]) * units[match[2]])
    return limits[0], int(limits[1])


def _reason(error: Exception | None) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return str(error.reason)
    return str(error) or type(error).__name__


class _Download:
    """One download into ``partial``: its attempts share one deadline and one size limit."""

    def __init__(
        self, url: str, authorization: str | None, partial: Path, name: str, most: int
    ) -> None:
        self.url = url
        self.authorization = authorization
        self.partial = partial
        self.name = name
        self.most = most

    def run(self, watchdog: Watchdog) -> Exception | None:
        """Download, resuming a dropped connection; the last error, if any."""
        error: Exception | None = None
        for _ in range(_ATTEMPTS):
            try:
                self.once(watchdog)
                return None
            except Refused as refused:
                return refused
            except (urllib.error.URLError, OSError, http.client.HTTPException) as caught:
                error = caught
                if isinstance(caught, urllib.error.HTTPError):
                    caught.close()  # it holds the response open
                if watchdog.expired:
                    return Refused(
                        f"it did not finish within {watchdog.seconds:g} s, the limit "
                        f"{TIMEOUT_VARIABLE} sets"
                    )
                if isinstance(caught, urllib.error.HTTPError) and caught.code < 500:
                    break  # the server said no: asking again will not help
        return error

    def once(self, watchdog: Watchdog) -> None:
        """Append to ``partial`` from where it stops; raise when the body ends early."""
        offset = self.partial.stat().st_size
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        request = urllib.request.Request(self.url, headers=headers)
        if self.authorization is not None:  # not sent on to where a redirect points
            request.add_unredirected_header("Authorization", self.authorization)
        opener = urllib.request.build_opener(
            Redirects, WatchedHTTP(watchdog), WatchedHTTPS(watchdog)
        )
        with opener.open(request, timeout=min(_READ_TIMEOUT, watchdog.left())) as response:
            if offset and response.status != 206:  # the server ignored Range: start over
                offset = 0
            if response.headers.get_content_type() == "text/html":
                raise Refused(
                    "the server sent an HTML page, not a checkpoint (a login or error page?)"
                )
            length = response.headers.get("Content-Length")
            expected = offset + int(length) if length and length.isdigit() else None
            if expected is not None:
                _check_size(expected, self.most, self.partial.parent)
            with (
                open(self.partial, "ab" if offset else "wb") as file,
                ProgressBar(f"downloading {self.name}", expected, 100 * 2**20) as advance,
            ):
                size = offset
                # read1 returns what has arrived: a dripping server cannot hold one read
                while chunk := response.read1(_CHUNK):
                    size += len(chunk)
                    if size > self.most:
                        raise Refused(
                            f"it grew past the {self.most} bytes {MAX_BYTES_VARIABLE} allows"
                        )
                    file.write(chunk)
                    advance(len(chunk))
        if watchdog.expired:
            raise TimeoutError("the deadline passed")
        size = self.partial.stat().st_size
        if expected is not None and size < expected:
            raise http.client.IncompleteRead(b"", expected - size)


def _check_size(expected: int, most: int, folder: Path) -> None:
    """Refuse a download the server declares larger than the limit or the free disk."""
    if expected > most:
        raise Refused(
            f"the server declares {expected} bytes, more than the {most} bytes "
            f"{MAX_BYTES_VARIABLE} allows; raise it if the checkpoint really is that large"
        )
    free = shutil.disk_usage(folder).free
    if expected > free:
        raise Refused(
            f"the server declares {expected} bytes, and the disk holding the cache has {free} "
            f"free; free space, or set INITSCHEMA_HOME to a larger disk"
        )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
