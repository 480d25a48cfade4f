"""Every lint code: one plan that raises it, one that does not (the guide's table)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor import Shard, distribute_tensor

import initschema as ins
from initschema_testing import zoo
from initschema_testing.paths import ROOT

KIT = zoo.kits()["initschema"]


def _net(init_cfg: Any = None) -> nn.Module:
    return zoo.toy_net(KIT, init_cfg)


class Wrapped(ins.BaseModule):
    """A BaseModule whose own init_weights never calls super()."""

    def __init__(self, init_cfg: Any = None) -> None:
        super().__init__(init_cfg)
        self.fc = nn.Linear(2, 2)

    def init_weights(self) -> None:
        nn.init.zeros_(self.fc.weight)


class Raw(ins.BaseModule):
    """TridentNet-style: a parameter made with torch.empty, no reset_parameters."""

    def __init__(self, init_cfg: Any = None) -> None:
        super().__init__(init_cfg)
        self.weight = nn.Parameter(torch.empty(3, 3))


class Resized(ins.BaseModule):
    """A module whose load pre-hook resizes an entry (mmpretrain's pos_embed)."""

    def __init__(self, init_cfg: Any = None, size: int = 4) -> None:
        super().__init__(init_cfg)
        self.table = nn.Parameter(torch.zeros(size))
        self._register_load_state_dict_pre_hook(self._resize)

    def _resize(self, state: dict[str, Any], prefix: str, *args: Any) -> None:
        key = prefix + "table"
        if key in state and state[key].shape != self.table.shape:
            state[key] = state[key][: self.table.numel()]


class Fragile(Resized):
    """Load code that fails on meta stand-ins (it reads values)."""

    def _resize(self, state: dict[str, Any], prefix: str, *args: Any) -> None:
        float(self.table.sum())


def _ckpt(tmp: Path, state: dict[str, torch.Tensor]) -> str:
    path = tmp / f"c{len(list(tmp.iterdir()))}.pth"
    torch.save(state, path)
    return str(path)


def _toy_state() -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in _net().state_dict().items()}


def _sharded_plan(tmp: Path, kind: str, placements: list[Any]) -> ins.InitPlan:
    """A Linear whose weight is a DTensor with ``placements`` on a mesh of one."""

    @ins.register_initializer("Whole")
    class WholeInit(ins.WeightInit):  # no init_values: computed whole when seeded
        def init_weight(self, weight: torch.Tensor, generator: Any = None) -> None:
            weight.fill_(1)

    mesh = init_device_mesh("cpu", (1,))
    model = nn.Linear(4, 4)
    model.weight = nn.Parameter(distribute_tensor(model.weight.detach(), mesh, placements))
    return ins.compile_plan(model, dict(type=kind, layer="Linear"))


Case = Callable[[Path], ins.InitPlan]
CASES: dict[str, tuple[Case, Case]] = {
    "already-initialized": (
        lambda tmp: (m := _net(), setattr(m, "is_init", True), ins.compile_plan(m))[2],
        lambda tmp: ins.compile_plan(_net()),
    ),
    "deferred-init-cfg": (
        lambda tmp: ins.compile_plan(KIT.Sequential(Wrapped(dict(checkpoint="x.pth")))),
        lambda tmp: ins.compile_plan(KIT.Sequential(Wrapped(dict(type="Normal", layer="Linear")))),
    ),
    "no-layer": (
        lambda tmp: ins.compile_plan(_net(dict(type="Normal"))),
        lambda tmp: ins.compile_plan(_net(dict(type="Normal", override=dict(name="fc")))),
    ),
    "unmatched-layer": (
        lambda tmp: ins.compile_plan(_net(dict(type="Normal", layer="Conv3d"))),
        lambda tmp: ins.compile_plan(_net(dict(type="Normal", layer=["Linear", "Conv3d"]))),
    ),
    "unmatched-layer-name": (
        lambda tmp: ins.compile_plan(_net(dict(type="Normal", layer=["Linear", "Conv3d"]))),
        lambda tmp: ins.compile_plan(_net(dict(type="Normal", layer=["Linear"]))),
    ),
    "unreachable-init-cfg": (
        lambda tmp: ins.compile_plan(
            KIT.Sequential(nn.Sequential(_net(dict(type="Normal", layer="Linear"))))
        ),
        lambda tmp: ins.compile_plan(
            KIT.Sequential(KIT.Sequential(_net(dict(type="Normal", layer="Linear"))))
        ),
    ),
    "shadowed-rule": (
        lambda tmp: ins.compile_plan(
            _net(
                [dict(type="Normal", layer="Linear"), dict(type="Constant", val=1, layer="Linear")]
            )
        ),
        lambda tmp: ins.compile_plan(
            _net(
                [dict(type="Normal", layer="Linear"), dict(type="Constant", val=1, layer="Conv2d")]
            )
        ),
    ),
    "default-init": (
        lambda tmp: ins.compile_plan(_net(dict(type="Normal", layer="Linear"))),
        lambda tmp: ins.compile_plan(
            _net(
                [
                    dict(type="Normal", layer=["Linear", "Conv2d"]),
                    dict(type="Constant", val=1, layer="BatchNorm2d"),
                ]
            )
        ),
    ),
    "possibly-uninitialized": (
        lambda tmp: ins.compile_plan(KIT.Sequential(Raw())),
        lambda tmp: ins.compile_plan(KIT.Sequential(Raw(dict(type="Normal", layer="Raw")))),
    ),
    "stays-on-meta": (
        lambda tmp: ins.compile_plan(
            nn.Linear(2, 2, device="meta"), dict(type="Normal", layer="Conv2d")
        ),
        lambda tmp: ins.compile_plan(
            nn.Linear(2, 2, device="meta"), dict(type="Normal", layer="Linear")
        ),
    ),
    "unmatched-pattern": (
        lambda tmp: ins.compile_plan(_net(), dict(type="Normal", params=["fc.weigth"])),
        lambda tmp: ins.compile_plan(_net(), dict(type="Normal", params=["fc.weight"])),
    ),
    "seeded-whole-tensor": (
        lambda tmp: _sharded_plan(tmp, "Whole", [Shard(0)]),
        lambda tmp: _sharded_plan(tmp, "Normal", [Shard(0)]),
    ),
    "seeded-shard-cost": (
        lambda tmp: _sharded_plan(tmp, "Normal", [Shard(1)]),
        lambda tmp: _sharded_plan(tmp, "Normal", [Shard(0)]),
    ),
    "checkpoint-mismatch": (
        lambda tmp: ins.compile_plan(
            _net(),
            dict(
                type="Pretrained",
                checkpoint=_ckpt(tmp, {**_toy_state(), "fc.bias": torch.zeros(3)}),
            ),
        ),
        lambda tmp: ins.compile_plan(
            _net(), dict(type="Pretrained", checkpoint=_ckpt(tmp, _toy_state()))
        ),
    ),
    "checkpoint-missing": (
        lambda tmp: ins.compile_plan(
            _net(),
            dict(
                type="Pretrained",
                checkpoint=_ckpt(tmp, {k: v for k, v in _toy_state().items() if k != "fc.bias"}),
            ),
        ),
        lambda tmp: ins.compile_plan(
            _net(), dict(type="Pretrained", checkpoint=_ckpt(tmp, _toy_state()))
        ),
    ),
    "checkpoint-unexpected": (
        lambda tmp: ins.compile_plan(
            _net(),
            dict(
                type="Pretrained", checkpoint=_ckpt(tmp, {**_toy_state(), "extra": torch.zeros(1)})
            ),
        ),
        lambda tmp: ins.compile_plan(
            _net(), dict(type="Pretrained", checkpoint=_ckpt(tmp, _toy_state()))
        ),
    ),
    "checkpoint-dtype": (
        lambda tmp: ins.compile_plan(
            _net(),
            dict(
                type="Pretrained",
                checkpoint=_ckpt(
                    tmp,
                    {
                        k: v.double() if v.is_floating_point() else v
                        for k, v in _toy_state().items()
                    },
                ),
            ),
        ),
        lambda tmp: ins.compile_plan(
            _net(), dict(type="Pretrained", checkpoint=_ckpt(tmp, _toy_state()))
        ),
    ),
    "load-hooks": (
        lambda tmp: ins.compile_plan(
            Resized(), dict(type="Pretrained", checkpoint=_ckpt(tmp, {"table": torch.ones(6)}))
        ),
        lambda tmp: ins.compile_plan(
            _net(), dict(type="Pretrained", checkpoint=_ckpt(tmp, _toy_state()))
        ),
    ),
    "load-hooks-unchecked": (
        lambda tmp: ins.compile_plan(
            Fragile(size=4).to("meta"),
            dict(type="Pretrained", checkpoint=_ckpt(tmp, {"table": torch.ones(4)})),
        ),
        lambda tmp: ins.compile_plan(
            Resized(), dict(type="Pretrained", checkpoint=_ckpt(tmp, {"table": torch.ones(4)}))
        ),
    ),
}


@pytest.fixture(autouse=True)
def _process_group(tmp_path: Path) -> Iterator[None]:
    """A world of one (a file store, no sockets), for the cases with DTensor parameters."""
    dist.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1
    )
    yield
    dist.destroy_process_group()


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("code", sorted(CASES))
class TestEveryCode:
    def test_raised(self, code: str, tmp_path: Path) -> None:
        """The code's case raises it."""
        plan = CASES[code][0](tmp_path)
        assert code in {lint.kind for lint in plan.lints}

    def test_not_raised(self, code: str, tmp_path: Path) -> None:
        """The code's clean case does not."""
        plan = CASES[code][1](tmp_path)
        assert code not in {lint.kind for lint in plan.lints}


def test_every_documented_code_is_covered() -> None:
    """The guide's lint table lists exactly the codes tested here."""
    readme = (ROOT / "docs" / "plans-reports-lints.md").read_text()
    table = readme[readme.index("| lint | level |") :].split("\n\n")[0]
    documented = {line.split("`")[1] for line in table.splitlines()[2:]}
    assert documented == set(CASES)
