"""Hostile and broken checkpoints (issue 18): refused before any write, naming the entry."""

from __future__ import annotations

import json
import os
import pickle
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file

import initschema as ins
from initschema_testing import zoo

KIT = zoo.kits()["initschema"]


def _source(seed: int = 42) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return {k: v.contiguous() for k, v in zoo.toy_net(KIT).state_dict().items()}


def _refused(checkpoint: Path | str, *texts: str, **kwargs: Any) -> str:
    """Compile a Constant rule then a Pretrained rule; assert the InitCfgError names
    ``texts``, and that neither the weights nor the RNG state moved."""
    torch.manual_seed(0)
    model = zoo.toy_net(KIT)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    rules = [
        dict(type="Constant", val=3, layer="Conv2d"),
        dict(type="Pretrained", checkpoint=str(checkpoint), **kwargs),
    ]
    with pytest.raises(ins.InitCfgError) as info:
        ins.initialize(model, rules)
    message = str(info.value)
    for text in texts:
        assert text in message
    after = model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())
    assert torch.equal(torch.get_rng_state(), rng)
    return message


def _index(folder: Path, weight_map: dict[str, Any], name: str = "model") -> Path:
    index = folder / f"{name}.safetensors.index.json"
    index.write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return index


def _sharded(folder: Path, source: dict[str, torch.Tensor]) -> dict[str, str]:
    """One shard per key half next to the index; the weight map that names them."""
    keys = sorted(source)
    weight_map = {}
    for name, part in (("a", keys[: len(keys) // 2]), ("b", keys[len(keys) // 2 :])):
        save_file({k: source[k] for k in part}, folder / f"model-{name}.safetensors")
        weight_map.update(dict.fromkeys(part, f"model-{name}.safetensors"))
    return weight_map


class TestShardsStayInTheirFolder:
    @pytest.fixture
    def layout(self, tmp_path: Path) -> tuple[Path, dict[str, str], Path]:
        """A checkpoint folder, its weight map, and a private file beside the folder."""
        folder = tmp_path / "ckpt"
        folder.mkdir()
        private = tmp_path / "private"
        private.mkdir()
        save_file(_source(seed=7), private / "other.safetensors")
        return folder, _sharded(folder, _source()), private / "other.safetensors"

    def test_dot_dot(self, layout: tuple[Path, dict[str, str], Path]) -> None:
        """A shard named ../private/other.safetensors is refused, naming the entry."""
        folder, weight_map, _ = layout
        weight_map["fc.weight"] = "../private/other.safetensors"
        _refused(
            _index(folder, weight_map),
            "maps 'fc.weight' to '../private/other.safetensors'",
            "without '..'",
        )

    def test_absolute(self, layout: tuple[Path, dict[str, str], Path]) -> None:
        """An absolute shard path is refused, naming the entry."""
        folder, weight_map, other = layout
        weight_map["fc.weight"] = str(other)
        _refused(_index(folder, weight_map), f"maps 'fc.weight' to {str(other)!r}")

    def test_symlink_out(self, layout: tuple[Path, dict[str, str], Path]) -> None:
        """A shard that is a link to a file outside the folder is refused."""
        folder, weight_map, other = layout
        (folder / "link.safetensors").symlink_to(other)
        weight_map["fc.weight"] = "link.safetensors"
        _refused(
            _index(folder, weight_map),
            "maps 'fc.weight' to 'link.safetensors'",
            f"a link to {str(other)!r} outside the index's folder",
        )

    def test_symlinked_folder_loads(self, tmp_path: Path) -> None:
        """A Hugging Face cache layout (index and shards linked into blobs/) loads."""
        source = _source()
        blobs, snapshot = tmp_path / "blobs", tmp_path / "snapshots" / "abc"
        blobs.mkdir()
        snapshot.mkdir(parents=True)
        weight_map = _sharded(blobs, source)
        for name in set(weight_map.values()):
            (blobs / name).rename(blobs / f"blob-{name}")
            (snapshot / name).symlink_to(Path("../..") / "blobs" / f"blob-{name}")
        index = _index(blobs, weight_map, "blob-index")
        (snapshot / "model.safetensors.index.json").symlink_to(index)
        model = zoo.toy_net(KIT)
        ins.initialize(model, dict(type="Pretrained", checkpoint=str(snapshot)))
        assert all(torch.equal(v, source[k]) for k, v in model.state_dict().items())

    @pytest.mark.parametrize("name", ["", 3, None])
    def test_not_a_file_name(self, tmp_path: Path, name: Any) -> None:
        """A weight-map value that is not a file name is refused, naming the entry."""
        weight_map = _sharded(tmp_path, _source())
        weight_map["fc.weight"] = name
        _refused(_index(tmp_path, weight_map), "maps 'fc.weight' to", "which is not a file name")


class TestIndexesDoNotNest:
    def test_names_itself(self, tmp_path: Path) -> None:
        """An index naming itself as a shard is an InitCfgError, not a RecursionError."""
        weight_map = _sharded(tmp_path, _source())
        weight_map["fc.weight"] = "model.safetensors.index.json"
        _refused(_index(tmp_path, weight_map), "maps 'fc.weight' to", "which is an index itself")

    def test_name_each_other(self, tmp_path: Path) -> None:
        """Two indexes naming each other are refused at the first."""
        _index(tmp_path, {"fc.weight": "a.safetensors.index.json"}, "b")
        first = _index(tmp_path, {"fc.weight": "b.safetensors.index.json"}, "a")
        _refused(first, "'b.safetensors.index.json', which is an index itself")

    def test_nested_json(self, tmp_path: Path) -> None:
        """Index JSON nested 100,000 deep is refused quickly, saying why."""
        index = tmp_path / "model.safetensors.index.json"
        index.write_text('{"weight_map": ' + "[" * 100_000 + "]" * 100_000 + "}")
        start = time.perf_counter()
        _refused(index, "is not a checkpoint index (its JSON nests deeper than")
        assert time.perf_counter() - start < 5  # generous: the work is well under a second


class TestWhatTheFileIs:
    def _file(self, tmp_path: Path, data: bytes, name: str = "m.pth") -> Path:
        path = tmp_path / name
        path.write_bytes(data)
        return path

    def test_random_bytes(self, tmp_path: Path) -> None:
        """Random bytes are 'not a torch file', with no advice to allow pickles."""
        data = bytes(range(7, 256)) * 4
        message = _refused(self._file(tmp_path, data), "it is not a torch file (it starts with")
        assert "allow_pickle" not in message

    def test_html_page(self, tmp_path: Path) -> None:
        """An HTML login page saved as a checkpoint is called an HTML page."""
        page = b"\n<!DOCTYPE html>\n<html><body><form>Sign in</form></body></html>\n"
        message = _refused(self._file(tmp_path, page), "it is an HTML page, not a checkpoint")
        assert "allow_pickle" not in message

    def test_html_as_safetensors(self, tmp_path: Path) -> None:
        """The same for a page saved under a .safetensors name."""
        page = b"<html><body>404 Not Found</body></html>" * 3
        _refused(self._file(tmp_path, page, "m.safetensors"), "it is an HTML page")

    def test_one_byte(self, tmp_path: Path) -> None:
        """A 1-byte file is called too short (truncated), not a pickle."""
        message = _refused(self._file(tmp_path, b"\x80"), "1 byte long, too short for a torch file")
        assert "allow_pickle" not in message

    def test_empty(self, tmp_path: Path) -> None:
        """A 0-byte .pth says it is empty, not 'could not be read: ' with nothing after."""
        _refused(self._file(tmp_path, b""), "could not be read: the file is empty (0 bytes)")

    def test_truncated_zip(self, tmp_path: Path) -> None:
        """A torch file cut short says so, with torch's reason."""
        torch.save(_source(), tmp_path / "full.pth")
        data = (tmp_path / "full.pth").read_bytes()
        cut = self._file(tmp_path, data[: len(data) // 2])
        message = _refused(cut, "it is a torch file cut short or damaged (")
        assert "allow_pickle" not in message

    def test_legacy_cut_short(self, tmp_path: Path) -> None:
        """A legacy (pre-zip) torch file cut short says so."""
        torch.save(_source(), tmp_path / "full.pth", _use_new_zipfile_serialization=False)
        data = (tmp_path / "full.pth").read_bytes()
        cut = self._file(tmp_path, data[: len(data) // 2])
        message = _refused(cut, "it is a torch file cut short or damaged (unexpected EOF")
        assert "allow_pickle" not in message

    def test_plain_pickle(self, tmp_path: Path) -> None:
        """A pickle torch.save did not write is no torch file; allow_pickle is no fix."""
        data = pickle.dumps({"fc.weight": [1.0, 2.0]}, protocol=4)
        message = _refused(
            self._file(tmp_path, data),
            "it is not what torch.save writes, or it is damaged (Detected pickle protocol 4",
        )
        assert "allow_pickle" not in message

    def test_function_advises_allow_pickle(self, tmp_path: Path) -> None:
        """A torch file naming a function is a real pickle with objects: allow_pickle is
        the advice, with torch's reason."""
        torch.save({"fc.weight": torch.ones(1), "hook": os.getcwd}, tmp_path / "m.pth")
        _refused(tmp_path / "m.pth", "(Trying to load unsupported GLOBAL", "set allow_pickle: true")

    @pytest.mark.parametrize("zipped", [True, False])
    def test_real_pickle_advises_allow_pickle(self, tmp_path: Path, zipped: bool) -> None:
        """Only a real pickle holding non-tensor objects gets the allow_pickle advice."""
        path = tmp_path / "m.pth"
        torch.save(
            {"state_dict": _source(), "cfg": zoo.Kit},
            path,
            _use_new_zipfile_serialization=zipped,
        )
        _refused(
            path,
            "holds pickled objects that weights_only=True refuses",
            "Unsupported global",
            "set allow_pickle: true",
        )


FORMATS = ["pth", "safetensors", "sharded"]


def _checkpoint(tmp_path: Path, fmt: str) -> Path:
    source = _source()
    if fmt == "pth":
        torch.save(source, tmp_path / "m.pth")
        return tmp_path / "m.pth"
    if fmt == "safetensors":
        save_file(source, tmp_path / "m.safetensors")
        return tmp_path / "m.safetensors"
    return _index(tmp_path, _sharded(tmp_path, source))


def _devices() -> list[str]:
    """Devices this machine lacks, or that cannot hold loaded values."""
    lacking = ["cuda:99", "mps:7", "meta"]
    if not torch.cuda.is_available():
        lacking.append("cuda")
    if not torch.backends.mps.is_available():
        lacking.append("mps")
    return lacking


class TestMapLocation:
    @pytest.mark.parametrize("fmt", FORMATS)
    @pytest.mark.parametrize("device", _devices())
    def test_refused_at_compile(self, tmp_path: Path, fmt: str, device: str) -> None:
        """Every format refuses a device this machine lacks, before the Constant rule writes."""
        _refused(
            _checkpoint(tmp_path, fmt),
            "init_cfg[1].map_location: ",
            f"map_location {device!r}",
            "use 'cpu'",
            map_location=device,
        )

    def test_not_a_device(self, tmp_path: Path) -> None:
        """A string torch does not know as a device says so."""
        _refused(_checkpoint(tmp_path, "pth"), "'gpu' is not a device", map_location="gpu")

    @pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
    @pytest.mark.parametrize("fmt", FORMATS)
    def test_cuda_loads_where_there_is_one(self, tmp_path: Path, fmt: str) -> None:
        """On a machine with a GPU, map_location: cuda loads every format."""
        model = zoo.toy_net(KIT)
        checkpoint = _checkpoint(tmp_path, fmt)
        rule = dict(type="Pretrained", checkpoint=str(checkpoint), map_location="cuda")
        ins.initialize(model, rule)
        assert all(torch.equal(v, _source()[k]) for k, v in model.state_dict().items())


def test_no_file_outside_checked(tmp_path: Path) -> None:
    """The refusals above read only: the folder holds what the test wrote."""
    weight_map = _sharded(tmp_path, _source())
    weight_map["fc.weight"] = "../x.safetensors"
    index = _index(tmp_path, weight_map)
    before = sorted(os.listdir(tmp_path.parent))
    _refused(index, "maps 'fc.weight'")
    assert sorted(os.listdir(tmp_path.parent)) == before
