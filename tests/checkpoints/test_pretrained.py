"""Pretrained rules: reading checkpoints safely, key selection, mismatches, errors."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

import initschema as ins
from initschema_testing import zoo
from initschema_testing.asserts import state_of

KIT = zoo.kits()["initschema"]


def _saved(tmp_path: Path, obj: object, name: str = "ckpt.pth") -> str:
    path = tmp_path / name
    torch.save(obj, path)
    return str(path)


def _source() -> dict[str, torch.Tensor]:
    torch.manual_seed(42)
    return zoo.toy_net(KIT).state_dict()


class TestLoading:
    def test_loads_parameters_and_buffers(self, tmp_path: Path) -> None:
        """Every key, buffers included, is copied."""
        source = _source()
        model = zoo.toy_net(KIT, dict(type="Pretrained", checkpoint=_saved(tmp_path, source)))
        model.init_weights()
        assert all(torch.equal(source[k], v) for k, v in model.state_dict().items())

    @pytest.mark.parametrize("wrap", ["state_dict", "module"])
    def test_unwraps_state_dict_and_ddp_prefix(self, tmp_path: Path, wrap: str) -> None:
        """A 'state_dict' entry is unwrapped and 'module.' stripped."""
        source = _source()
        obj = (
            {"state_dict": source, "meta": {}}
            if wrap == "state_dict"
            else {f"module.{k}": v for k, v in source.items()}
        )
        model = zoo.toy_net(KIT)
        ins.initialize(model, dict(type="Pretrained", checkpoint=_saved(tmp_path, obj)))
        assert torch.equal(model.fc.weight, source["fc.weight"])

    def test_prefix(self, tmp_path: Path) -> None:
        """prefix takes the sub-dict under it, with or without the trailing dot."""
        source = {f"backbone.{k}": v for k, v in _source().items()}
        for prefix in ("backbone", "backbone."):
            model = zoo.toy_net(KIT)
            plan = ins.compile_plan(
                model, dict(type="Pretrained", prefix=prefix, checkpoint=_saved(tmp_path, source))
            )
            assert plan.actions[0].keys[0] == ("conv1.weight", "backbone.conv1.weight")
            plan.execute()
            assert torch.equal(model.conv1.weight, source["backbone.conv1.weight"])

    def test_mismatched_head_is_skipped(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """The fine-tune case: a head of another size keeps its values, with a warning."""
        source = _source()
        source["fc.weight"] = torch.zeros(3, 8)
        model = zoo.toy_net(KIT)
        before = model.fc.weight.clone()
        with caplog.at_level(logging.WARNING, logger="initschema"):
            report = ins.compile_plan(
                model, dict(type="Pretrained", checkpoint=_saved(tmp_path, source))
            ).execute()
        assert torch.equal(model.fc.weight, before)
        assert torch.equal(model.fc.bias, source["fc.bias"])
        assert report["fc.weight"].provenance is None
        assert "fc.weight: shape (3, 8) in checkpoint, (10, 8) in model" in caplog.text

    def test_missing_and_unexpected_keys_are_lints(self, tmp_path: Path) -> None:
        """Missing and unexpected keys are reported, as MMEngine's warning does."""
        source = _source()
        del source["bn.weight"]
        source["extra.weight"] = torch.ones(1)
        plan = ins.compile_plan(
            zoo.toy_net(KIT), dict(type="Pretrained", checkpoint=_saved(tmp_path, source))
        )
        kinds = {lint.kind: lint.message for lint in plan.lints}
        assert "bn.weight" in kinds["checkpoint-missing"]
        assert "extra.weight" in kinds["checkpoint-unexpected"]


class TestErrors:
    def _unchanged_after(self, checkpoint: str, text: str, **kwargs: object) -> None:
        model = zoo.toy_net(
            KIT,
            [
                dict(type="Constant", val=3, layer="Conv2d"),
                dict(type="Pretrained", checkpoint=checkpoint, **kwargs),
            ],
        )
        before = state_of(model)
        with pytest.raises(ins.InitCfgError) as info:
            model.init_weights()
        assert text in str(info.value)
        assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())

    def test_missing_file(self, tmp_path: Path) -> None:
        """A missing file names the path it looked for."""
        self._unchanged_after(
            str(tmp_path / "nope.pth"), f"does not exist (looked for {tmp_path / 'nope.pth'})"
        )

    def test_pickle_is_refused(self, tmp_path: Path) -> None:
        """A checkpoint holding arbitrary objects is not unpickled."""
        path = _saved(tmp_path, {"state_dict": _source(), "cfg": zoo.Kit})
        self._unchanged_after(path, "holds pickled objects that weights_only=True refuses")

    def test_corrupt_file(self, tmp_path: Path) -> None:
        """A truncated file is a clear error."""
        path = tmp_path / "bad.pth"
        path.write_bytes(Path(_saved(tmp_path, _source())).read_bytes()[:100])
        self._unchanged_after(str(path), "could not be read")

    def test_prefix_matching_nothing(self, tmp_path: Path) -> None:
        """A prefix that selects nothing lists the prefixes there are."""
        self._unchanged_after(
            _saved(tmp_path, _source()), "prefix 'head' matches no key of checkpoint", prefix="head"
        )
