"""MMEngine's real ``Runner`` with the door: ``Runner.from_cfg`` + ``train()`` on the model
of ``tests/initschema_testing/mmengine_toy.py``, once with MMEngine alone and once with
``initschema.mmengine`` in the config's ``custom_imports``, each in its own process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from initschema_testing.paths import SUPPORT
from initschema_testing.subprocesses import environ, run_python

pytest.importorskip("mmengine.runner")
pytestmark = pytest.mark.openmmlab

TIMEOUT_S = 300

CONFIG = """
model = dict(
    type="ToyNet",
    init_cfg=dict(
        type="ToyScaled",
        layer="Linear",
        scale=0.2,
        override=dict(name="extra", type="ToyScaled", scale=3.0),
    ),
)
work_dir = {work_dir!r}
train_dataloader = dict(
    dataset=dict(type="ToyDataset"),
    sampler=dict(type="DefaultSampler", shuffle=True),
    batch_size=4,
    num_workers=0,
)
train_cfg = dict(by_epoch=False, max_iters=1)
optim_wrapper = dict(optimizer=dict(type="SGD", lr=0.1))
randomness = dict(seed=0)
default_hooks = dict(checkpoint=None)
custom_hooks = [dict(type="SaveAfterInit", out={init_out!r})]
custom_imports = dict(imports={imports!r}, allow_failed_imports=False)
"""


def _train(tmp_path: Path, name: str, imports: list[str]) -> dict[str, Any]:
    """One run in a fresh process; its saved states and the text of its log file."""
    work_dir = tmp_path / name
    config = tmp_path / f"{name}_config.py"
    init_out, out = tmp_path / f"{name}-init.pt", tmp_path / f"{name}-trained.pt"
    text = CONFIG.format(work_dir=str(work_dir), init_out=str(init_out), imports=imports)
    config.write_text(text)
    code = f"import mmengine_toy; mmengine_toy.main({str(config)!r}, {str(out)!r})"
    run = run_python("-c", code, cwd=tmp_path, env=environ(SUPPORT), timeout=TIMEOUT_S)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    (log,) = work_dir.glob("*/*.log")
    return {
        "init": torch.load(init_out, weights_only=True),
        "trained": torch.load(out, weights_only=True),
        "log": log.read_text(),
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    tmp_path = tmp_path_factory.mktemp("runner")
    return {
        "mmengine": _train(tmp_path, "mmengine", ["mmengine_toy"]),
        "initschema": _train(tmp_path, "initschema", ["mmengine_toy", "initschema.mmengine"]),
    }


def _assert_same(ref: dict[str, Any], ours: dict[str, Any]) -> None:
    assert list(ours["state"]) == list(ref["state"])
    differ = [k for k, v in ref["state"].items() if not torch.equal(v, ours["state"][k])]
    assert not differ, f"tensors differ: {differ}"
    assert torch.equal(ours["rng"], ref["rng"]), "the RNG was consumed differently"


class TestRunner:
    def test_same_weights_and_rng_after_init(self, runs: dict[str, dict[str, Any]]) -> None:
        """Right after init_weights: MMEngine's weights and RNG state, bitwise."""
        _assert_same(runs["mmengine"]["init"], runs["initschema"]["init"])

    def test_same_after_one_iteration(self, runs: dict[str, dict[str, Any]]) -> None:
        """After one training iteration too (and the iteration changed the weights)."""
        _assert_same(runs["mmengine"]["trained"], runs["initschema"]["trained"])
        init, trained = runs["initschema"]["init"]["state"], runs["initschema"]["trained"]["state"]
        assert not torch.equal(init["head.fc_cls.weight"], trained["head.fc_cls.weight"])

    def test_log_keeps_mmengine_per_parameter_lines(self, runs: dict[str, dict[str, Any]]) -> None:
        """MMEngine's section of the log, each parameter named with what wrote it."""
        ref, ours = runs["mmengine"]["log"], runs["initschema"]["log"]
        for log in (ref, ours):
            assert "Name of parameter - Initialization information" in log
            assert "\nstem.conv.weight - torch.Size([8, 3, 3, 3]): \n" in log
        assert "\nNormalInit: mean=0, std=0.1, bias=0 \n" in ref  # MMEngine's own words
        expected = [
            "stem.conv.weight - torch.Size([8, 3, 3, 3]): \nInitialized by Kaiming(a=0, "
            "mode='fan_out', nonlinearity='relu', distribution='normal') from stem.init_cfg[0] "
            "at module 'stem.conv' \n",
            "stem.norm.weight - torch.Size([8]): \nInitialized by Constant(val=1) from "
            "stem.init_cfg[1] at module 'stem.norm' \n",
            "head.fc_cls.weight - torch.Size([4, 16]): \nInitialized by Normal(mean=0, std=0.1) "
            "from head.init_cfg.override at module 'head.fc_cls' \n",
            "head.hidden.weight - torch.Size([16, 8]): \nInitialized by Normal(mean=0, "
            "std=0.01) from head.init_cfg at module 'head.hidden' \n",
            "extra.weight - torch.Size([4, 8]): \nInitialized by ToyScaled(scale=3.0) "
            "(mmengine_toy.ToyScaledInit, from MMEngine's registry) from init_cfg.override "
            "at module 'extra' \n",
        ]
        for line in expected:
            assert line in ours, line
        assert (
            "initialized ToyNet: 10 parameters, 8 by init_cfg rules, 2 by Call rules, "
            "0 unchanged" in ours
        )
