"""Checkpoint formats: torch (mmap), safetensors, sharded indexes, directories, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file

import initschema as ins
from initschema.checkpoints.formats import ShardedReader
from initschema_testing import zoo
from initschema_testing.asserts import state_of

KIT = zoo.kits()["initschema"]


def _source() -> dict[str, torch.Tensor]:
    torch.manual_seed(42)
    return {k: v.contiguous() for k, v in zoo.toy_net(KIT).state_dict().items()}


def _shard(tmp_path: Path, state: dict[str, torch.Tensor], fmt: str) -> Path:
    """Two shards and an index, as model hubs publish them."""
    keys = sorted(state)
    halves = {"a": keys[: len(keys) // 2], "b": keys[len(keys) // 2 :]}
    weight_map = {}
    for name, part in halves.items():
        shard = f"model-{name}.{'safetensors' if fmt == 'safetensors' else 'bin'}"
        chunk = {k: state[k] for k in part}
        if fmt == "safetensors":
            save_file(chunk, tmp_path / shard)
        else:
            torch.save(chunk, tmp_path / shard)
        weight_map.update(dict.fromkeys(part, shard))
    index = tmp_path / f"model.{'safetensors' if fmt == 'safetensors' else 'bin'}.index.json"
    index.write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return index


def _load(checkpoint: Any, **kwargs: Any) -> torch.nn.Module:
    model = zoo.toy_net(KIT)
    ins.initialize(model, dict(type="Pretrained", checkpoint=str(checkpoint), **kwargs))
    return model


def _same(model: torch.nn.Module, source: dict[str, torch.Tensor], prefix: str = "") -> None:
    state = model.state_dict()
    assert all(torch.equal(state[k], source[prefix + k]) for k in state)


class TestFormats:
    @pytest.mark.parametrize("suffix", [".pth", ".pt", ".bin"])
    def test_torch_files(self, tmp_path: Path, suffix: str) -> None:
        """Torch checkpoints of every usual suffix load."""
        source = _source()
        torch.save(source, tmp_path / f"m{suffix}")
        _same(_load(tmp_path / f"m{suffix}"), source)

    def test_safetensors(self, tmp_path: Path) -> None:
        """A .safetensors file loads."""
        source = _source()
        save_file(source, tmp_path / "m.safetensors")
        _same(_load(tmp_path / "m.safetensors"), source)

    @pytest.mark.parametrize("fmt", ["safetensors", "bin"])
    def test_sharded_index(self, tmp_path: Path, fmt: str) -> None:
        """A sharded checkpoint loads through its index."""
        source = _source()
        _same(_load(_shard(tmp_path, source, fmt)), source)

    @pytest.mark.parametrize("fmt", ["safetensors", "bin", "single"])
    def test_directory(self, tmp_path: Path, fmt: str) -> None:
        """A directory holding a checkpoint or an index loads."""
        source = _source()
        if fmt == "single":
            save_file(source, tmp_path / "model.safetensors")
        else:
            _shard(tmp_path, source, fmt)
        _same(_load(tmp_path), source)

    def test_prefix_reads_only_its_shards(self, tmp_path: Path) -> None:
        """With a prefix, shards without keys under it are never opened."""
        inner = _source()
        source = {**{f"backbone.{k}": v for k, v in inner.items()}, "head.w": torch.ones(2)}
        save_file(
            {k: v for k, v in source.items() if k.startswith("backbone.")},
            tmp_path / "a.safetensors",
        )
        save_file({"head.w": source["head.w"]}, tmp_path / "b.safetensors")
        weight_map = {
            k: "a.safetensors" if k.startswith("backbone.") else "b.safetensors" for k in source
        }
        index = tmp_path / "model.safetensors.index.json"
        index.write_text(json.dumps({"weight_map": weight_map}))
        model = zoo.toy_net(KIT)
        plan = ins.compile_plan(
            model, dict(type="Pretrained", checkpoint=str(index), prefix="backbone.")
        )
        plan.execute()
        _same(model, source, "backbone.")
        reader = plan.actions[0].checkpoint.reader  # type: ignore[union-attr]
        assert isinstance(reader, ShardedReader)
        assert [Path(p).name for p in reader.shards] == ["a.safetensors"]

    def test_revise_keys(self, tmp_path: Path) -> None:
        """revise_keys rewrite checkpoint keys in order; the plan shows the final mapping."""
        source = _source()
        torch.save({f"model.net.{k}": v for k, v in source.items()}, tmp_path / "m.pth")
        model = zoo.toy_net(KIT)
        plan = ins.compile_plan(
            model,
            dict(
                type="Pretrained",
                checkpoint=str(tmp_path / "m.pth"),
                revise_keys=[(r"^model\.", ""), (r"^net\.", "")],
            ),
        )
        assert ("conv1.weight", "model.net.conv1.weight") in plan.actions[0].keys
        assert "load 'model.net.fc.weight'" in str(plan)
        plan.execute()
        _same(model, source)

    def test_dtype_is_converted_and_reported(self, tmp_path: Path) -> None:
        """A float16 checkpoint loads into a float32 model, with an info lint."""
        source = {k: v.half() if v.is_floating_point() else v for k, v in _source().items()}
        save_file(source, tmp_path / "m.safetensors")
        model = zoo.toy_net(KIT)
        plan = ins.compile_plan(
            model, dict(type="Pretrained", checkpoint=str(tmp_path / "m.safetensors"))
        )
        assert any(
            lint.kind == "checkpoint-dtype" and "float16 → float32" in lint.message
            for lint in plan.lints
        )
        plan.execute()
        assert model.fc.weight.dtype == torch.float32
        assert torch.equal(model.fc.weight, source["fc.weight"].float())


class TestPolicies:
    def _head(self, tmp_path: Path) -> Path:
        source = _source()
        source["fc.weight"] = torch.zeros(3, 8)
        save_file(source, tmp_path / "m.safetensors")
        return tmp_path / "m.safetensors"

    def test_fine_tune_skips_the_head(self, tmp_path: Path) -> None:
        """on_mismatch: skip (default): the mismatched head keeps its values."""
        model = zoo.toy_net(KIT)
        before = model.fc.weight.clone()
        ins.initialize(model, dict(type="Pretrained", checkpoint=str(self._head(tmp_path))))
        assert torch.equal(model.fc.weight, before)

    def test_on_mismatch_error(self, tmp_path: Path) -> None:
        """on_mismatch: error stops at compile time, model untouched."""
        model = zoo.toy_net(KIT)
        before = state_of(model)
        with pytest.raises(
            ins.InitCfgError,
            match=r"fc\.weight: shape \(3, 8\) in checkpoint, "
            r"\(10, 8\) in model; set on_mismatch: skip",
        ):
            ins.initialize(
                model,
                dict(type="Pretrained", checkpoint=str(self._head(tmp_path)), on_mismatch="error"),
            )
        assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())

    def test_strict(self, tmp_path: Path) -> None:
        """strict: true demands every model key and no unexpected key."""
        source = _source()
        del source["bn.running_mean"]
        source["extra"] = torch.ones(1)
        save_file(source, tmp_path / "m.safetensors")
        with pytest.raises(ins.InitCfgError) as info:
            _load(tmp_path / "m.safetensors", strict=True)
        assert "strict: 1 keys missing from the checkpoint: bn.running_mean" in str(info.value)
        assert "strict: 1 keys unexpected in the checkpoint: extra" in str(info.value)

    def test_allow_pickle(self, tmp_path: Path) -> None:
        """A pickle is refused, saying how to allow it; allow_pickle: true loads it."""
        source = _source()
        torch.save({"state_dict": source, "cfg": zoo.Kit}, tmp_path / "m.pth")
        with pytest.raises(ins.InitCfgError, match="set allow_pickle: true in the rule"):
            _load(tmp_path / "m.pth")
        _same(_load(tmp_path / "m.pth", allow_pickle=True), source)


BROKEN = [
    "truncated-torch",
    "truncated-safetensors",
    "garbage-safetensors",
    "missing-shard",
    "bad-index",
    "empty-dir",
    "two-files",
]


class TestBroken:
    def _make(self, tmp_path: Path, case: str) -> tuple[Path, str]:
        source = _source()
        if case == "truncated-torch":
            torch.save(source, tmp_path / "m.pth")
            data = (tmp_path / "m.pth").read_bytes()
            (tmp_path / "m.pth").write_bytes(data[: len(data) // 2])
            return tmp_path / "m.pth", "could not be read"
        if case == "truncated-safetensors":
            save_file(source, tmp_path / "m.safetensors")
            data = (tmp_path / "m.safetensors").read_bytes()
            (tmp_path / "m.safetensors").write_bytes(data[:-100])
            return tmp_path / "m.safetensors", "is not a readable safetensors file"
        if case == "garbage-safetensors":
            (tmp_path / "m.safetensors").write_bytes(b"not a checkpoint" * 10)
            return tmp_path / "m.safetensors", "is not a readable safetensors file"
        if case == "missing-shard":
            index = _shard(tmp_path, source, "safetensors")
            (tmp_path / "model-b.safetensors").unlink()
            return index, "names shards that do not exist"
        if case == "bad-index":
            (tmp_path / "m.safetensors.index.json").write_text('{"weights": 1}')
            return tmp_path / "m.safetensors.index.json", "is not a checkpoint index"
        if case == "empty-dir":
            return tmp_path, "holds no checkpoint files (none)"
        save_file(source, tmp_path / "a.safetensors")
        save_file(source, tmp_path / "b.safetensors")
        return tmp_path, "holds 2 checkpoint files (a.safetensors, b.safetensors)"

    @pytest.mark.parametrize("case", BROKEN)
    def test_clear_error_and_model_untouched(self, tmp_path: Path, case: str) -> None:
        """Each broken checkpoint is an InitCfgError naming the file; nothing is written."""
        path, text = self._make(tmp_path, case)
        model = zoo.toy_net(
            KIT,
            [
                dict(type="Constant", val=3, layer="Conv2d"),
                dict(type="Pretrained", checkpoint=str(path)),
            ],
        )
        before = state_of(model)
        with pytest.raises(ins.InitCfgError) as info:
            model.init_weights()
        assert str(info.value).startswith("init_cfg[1].checkpoint: ")
        assert text in str(info.value)
        assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


class TestMeta:
    def test_materialized_from_the_checkpoint(self, tmp_path: Path) -> None:
        """A model on the meta device gets its tensors from the checkpoint directly."""
        source = _source()
        torch.save(source, tmp_path / "m.pth")
        with torch.device("meta"):
            model = zoo.toy_net(KIT, dict(type="Pretrained", checkpoint=str(tmp_path / "m.pth")))
        plan = ins.compile_plan(model)
        assert not [lint for lint in plan.lints if lint.kind == "stays-on-meta"]
        plan.execute()
        assert not any(t.is_meta for t in model.state_dict().values())
        _same(model, source)

    def test_rules_materialize_what_they_write(self, tmp_path: Path) -> None:
        """Written tensors are materialized; a tensor nothing writes is reported."""
        with torch.device("meta"):
            model = zoo.toy_net(
                KIT,
                [
                    dict(type="Kaiming", layer="Conv2d"),
                    dict(type="Constant", val=1, layer=["Linear", "BatchNorm2d"]),
                ],
            )
        plan = ins.compile_plan(model)
        (lint,) = [lint for lint in plan.lints if lint.kind == "stays-on-meta"]
        assert "bn.running_mean" in lint.message
        plan.execute()
        assert torch.all(model.fc.weight == 1) and not model.conv1.weight.is_meta
        assert model.bn.running_mean.is_meta

    def test_tied_weights_stay_tied(self) -> None:
        """Materializing a shared parameter replaces it everywhere."""
        with torch.device("meta"):
            model = torch.nn.Sequential(
                torch.nn.Linear(4, 4, bias=False), torch.nn.Linear(4, 4, bias=False)
            )
        model[1].weight = model[0].weight
        ins.initialize(model, dict(type="Constant", val=2, layer="Linear"))
        assert model[0].weight is model[1].weight and torch.all(model[1].weight == 2)

    def test_tied_weights_loaded_stay_tied(self, tmp_path: Path) -> None:
        """A shared parameter loaded from a checkpoint stays shared."""
        source = {"0.weight": torch.full((4, 4), 3.0)}
        torch.save(source, tmp_path / "m.pth")
        with torch.device("meta"):
            model = torch.nn.Sequential(
                torch.nn.Linear(4, 4, bias=False), torch.nn.Linear(4, 4, bias=False)
            )
        model[1].weight = model[0].weight
        ins.initialize(model, dict(type="Pretrained", checkpoint=str(tmp_path / "m.pth")))
        assert model[0].weight is model[1].weight and torch.all(model[1].weight == 3)
