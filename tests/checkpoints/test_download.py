"""Checkpoints by address, served from a local HTTP server on 127.0.0.1 only."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import torch

import initschema as ins
from initschema.checkpoints.download import ProgressBar, cache_dir, url_for
from initschema_testing import zoo
from initschema_testing.downloads import KIT, LocalServer, toy_checkpoint, toy_net_from


class Server(LocalServer):
    """Serves ``files``; ``drop`` names files whose first response stops halfway."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.drop: set[str] = set()
        self.requests: list[tuple[str, str | None]] = []
        super().__init__()

    def get(self, handler: BaseHTTPRequestHandler) -> None:
        name = handler.path.lstrip("/")
        byte_range = handler.headers.get("Range")
        self.requests.append((name, byte_range))
        if name not in self.files:
            handler.send_error(404)
            return
        data = self.files[name]
        start = int(byte_range.split("=")[1].rstrip("-")) if byte_range else 0
        handler.send_response(206 if start else 200)
        handler.send_header("Content-Length", str(len(data) - start))
        handler.end_headers()
        if name in self.drop:
            self.drop.discard(name)
            handler.wfile.write(data[start : start + (len(data) - start) // 2])
            handler.wfile.flush()
            handler.close_connection = True
            return
        handler.wfile.write(data[start:])


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    monkeypatch.setenv("INITSCHEMA_HOME", str(tmp_path / "home"))
    running = Server()
    yield running
    running.close()


def _entry(url: str) -> Path:
    """Where the cache keeps ``url``: a folder named by the URL's SHA-256, the file's name."""
    return cache_dir() / hashlib.sha256(url.encode()).hexdigest()[:32] / url.rpartition("/")[2]


class TestDownload:
    def test_downloaded_once_then_cached(self, server: Server) -> None:
        """The first compile downloads into the cache; the second reads the cache."""
        state, data = toy_checkpoint(3)
        server.files["net.pth"] = data
        model = toy_net_from(f"{server.url}/net.pth")
        toy_net_from(f"{server.url}/net.pth")
        assert torch.equal(model.fc.weight, state["fc.weight"])
        assert server.requests == [("net.pth", None)]
        assert _entry(f"{server.url}/net.pth").read_bytes() == data

    def test_resumed_after_a_dropped_connection(self, server: Server) -> None:
        """A connection dropped halfway is resumed with a Range request."""
        state, data = toy_checkpoint(3)
        server.files["net.pth"] = data
        server.drop.add("net.pth")
        model = toy_net_from(f"{server.url}/net.pth")
        assert torch.equal(model.fc.weight, state["fc.weight"])
        assert server.requests[0] == ("net.pth", None)
        assert server.requests[1][1] is not None and server.requests[1][1].startswith("bytes=")
        assert not list(cache_dir().rglob("*.partial"))

    def test_hash_suffix_checked(self, server: Server) -> None:
        """A name carrying the SHA-256 prefix is accepted when it matches."""
        _, data = toy_checkpoint(3)
        name = f"net-{hashlib.sha256(data).hexdigest()[:8]}.pth"
        server.files[name] = data
        toy_net_from(f"{server.url}/{name}")
        assert _entry(f"{server.url}/{name}").is_file()

    def test_checksum_mismatch(self, server: Server) -> None:
        """A download whose hash differs from its name is an error and is not kept."""
        _, data = toy_checkpoint(3)
        server.files["net-deadbeef.pth"] = data
        model = zoo.toy_net(KIT)
        before = model.fc.weight.clone()
        with pytest.raises(
            ins.InitCfgError,
            match=r"is corrupt: its SHA-256 is .* but the file name promises deadbeef",
        ):
            ins.initialize(
                model, dict(type="Pretrained", checkpoint=f"{server.url}/net-deadbeef.pth")
            )
        assert torch.equal(model.fc.weight, before)
        assert not list(cache_dir().iterdir())

    def test_not_found(self, server: Server) -> None:
        """An HTTP error names the URL and the cache path to place the file at."""
        with pytest.raises(ins.InitCfgError) as info:
            toy_net_from(f"{server.url}/missing.pth")
        assert f"could not download {server.url}/missing.pth (HTTP 404" in str(info.value)
        assert f"put it at {_entry(f'{server.url}/missing.pth')}," in str(info.value)
        assert len(server.requests) == 1  # a 404 is not retried

    def test_no_network(self, server: Server) -> None:
        """Nothing listening: the error names the URL and the exact cache path."""
        url = f"{server.url}/net.pth"
        server.close()
        with pytest.raises(ins.InitCfgError) as info:
            toy_net_from(url)
        assert f"could not download {url}" in str(info.value)
        assert f"put it at {_entry(url)}," in str(info.value)


class TestNames:
    def test_torchvision_and_open_mmlab_names(self) -> None:
        """Names resolve through MMEngine's table, deprecated aliases included."""
        assert url_for("torchvision://resnet50", "x").endswith("/resnet50-0676ba61.pth")
        assert url_for("open-mmlab://detectron2/resnet50_caffe", "x").endswith(
            "/resnet50_msra-5891d200.pth"
        )
        assert url_for("openmmlab://resnet50_caffe", "x") == url_for(
            "open-mmlab://detectron/resnet50_caffe", "x"
        )

    def test_unknown_name(self) -> None:
        """An unknown name suggests the closest known one."""
        with pytest.raises(ins.InitCfgError, match="did you mean 'resnet50'"):
            url_for("torchvision://resnet5O", "init_cfg.checkpoint")

    def test_placed_by_hand(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A file put where the error says is used without any network."""
        monkeypatch.setenv("INITSCHEMA_HOME", str(tmp_path))
        state, data = toy_checkpoint(3)
        target = _entry(url_for("torchvision://resnet50", "x"))
        target.parent.mkdir(parents=True)
        target.write_bytes(data)
        model = toy_net_from("torchvision://resnet50")
        assert torch.equal(model.fc.weight, state["fc.weight"])

    def test_unknown_scheme(self) -> None:
        """Other schemes are refused with the ones that work."""
        with pytest.raises(ins.InitCfgError, match="has a scheme initschema cannot read"):
            toy_net_from("s3://bucket/net.pth")


class TestProgressBar:
    def test_silent_off_a_terminal(self) -> None:
        """Without a TTY there is no bar, however large the load."""
        with ProgressBar("loading", 10 * 2**30) as advance:
            advance(2**30)
        assert advance.bar is None

    def test_silent_for_small_loads(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Below the threshold there is no bar, even on a TTY."""
        monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
        assert ProgressBar("loading", 2**20).bar is None

    def test_bar_on_a_terminal(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Above the threshold on a TTY, a rich bar advances to the total."""
        monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
        with ProgressBar("loading", 512 * 2**20) as advance:
            advance(512 * 2**20)
            assert advance.bar is not None
            assert advance.bar.tasks[0].completed == 512 * 2**20
