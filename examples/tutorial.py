"""MMEngine's weight-initialization tutorial, run with initschema.

Each section builds the tutorial's model, prints the plan (what will write each
parameter, before anything is written), runs it, and prints the report (what
did). Run it with ``python examples/tutorial.py``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

import initschema as ins


def section(title: str) -> None:
    print(f"\n{'=' * 8} {title} {'=' * 8}")


def plan_and_run(model: nn.Module) -> ins.InitReport:
    """Print the plan, execute it, print the report."""
    plan = ins.compile_plan(model)
    print(plan)
    report = plan.execute()
    print(report)
    return report


class LinearNet(ins.BaseModule):
    def __init__(self, init_cfg: Any = None) -> None:
        super().__init__(init_cfg)
        self.linear = nn.Linear(1, 1)
        self.conv = nn.Conv2d(1, 1, 1)


class TwoConvNet(ins.BaseModule):
    def __init__(self, init_cfg: Any = None) -> None:
        super().__init__(init_cfg)
        self.conv1 = nn.Conv2d(1, 1, 1)
        self.conv2 = nn.Conv2d(1, 1, 1)


class ToyConv(nn.Module):
    """A plain module with its own init_weights, as in the tutorial."""

    def __init__(self) -> None:
        super().__init__()
        self.custom_weight = nn.Parameter(torch.empty(1, 1, 1, 1))
        self.custom_bias = nn.Parameter(torch.empty(1))

    def init_weights(self) -> None:
        with torch.no_grad():
            self.custom_weight.fill_(1)
            self.custom_bias.fill_(0)


class CustomNet(TwoConvNet):
    def __init__(self, init_cfg: Any = None) -> None:
        super().__init__(init_cfg)
        self.custom_conv = ToyConv()


@ins.register_initializer("Sparse")
class SparseInit(ins.WeightInit):
    """A user-defined initializer (Martens 2010's sparse init, torch.nn.init.sparse_):
    typed, registered, usable from any config."""

    fan_based = True
    sparsity: float = 0.5
    std: float = 0.01

    def init_weight(self, weight: torch.Tensor, generator: torch.Generator | None = None) -> None:
        nn.init.sparse_(weight, self.sparsity, self.std, generator=generator)


def main() -> None:
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        section("1. Pretrained: load a checkpoint into the whole model")
        checkpoint = Path(tmp) / "pretrained.pth"
        torch.save(LinearNet().state_dict(), checkpoint)
        net = LinearNet(init_cfg=dict(type="Pretrained", checkpoint=str(checkpoint)))
        plan_and_run(net)

    section("2. Kaiming for Conv2d, Xavier for Linear")
    plan_and_run(
        LinearNet(
            init_cfg=[dict(type="Kaiming", layer="Conv2d"), dict(type="Xavier", layer="Linear")]
        )
    )

    section("3. `layer` as a list: Kaiming for Conv2d and Linear")
    plan_and_run(LinearNet(init_cfg=[dict(type="Kaiming", layer=["Conv2d", "Linear"])]))

    section("4. `override`: Xavier for conv2 only")
    plan_and_run(
        TwoConvNet(
            init_cfg=[
                dict(type="Kaiming", layer=["Conv2d"], override=dict(name="conv2", type="Xavier"))
            ]
        )
    )

    section("5. A custom init_weights beside init_cfg")
    plan_and_run(
        CustomNet(
            init_cfg=[
                dict(type="Kaiming", layer=["Conv2d"], override=dict(name="conv2", type="Xavier"))
            ]
        )
    )

    section("6. A user-defined initializer from the registry")
    plan_and_run(LinearNet(init_cfg=dict(type="Sparse", layer="Linear", sparsity=0.25)))

    section("7. Module functions")
    net = TwoConvNet()
    ins.normal_init(net.conv1, std=0.01, bias=0)
    ins.constant_init(net.conv2, val=1, bias=0.5)
    ins.xavier_init(net.conv1, distribution="uniform")
    ins.kaiming_init(net.conv2, mode="fan_in")
    print("conv1.weight", net.conv1.weight.flatten().tolist())
    print("conv2.bias", net.conv2.bias.tolist())
    print("bias_init_with_prob(0.01) =", ins.bias_init_with_prob(0.01))

    section("8. A bad config is rejected before anything is written")
    try:
        TwoConvNet(init_cfg=dict(type="Kaiming", layer="Conv2d", mode="fan_middle"))
    except ins.InitCfgError as error:
        print(f"InitCfgError: {error}")


if __name__ == "__main__":
    main()
