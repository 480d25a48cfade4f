"""init_weights() time: initschema vs MMEngine vs a hand-written loop, in one process.

Two models, each built twice from the same code (on MMEngine's BaseModule family
and on initschema's): a ViT-B-shaped transformer (86M parameters) and a
ResNet-50-shaped CNN whose bottlenecks are nested BaseModules with their own
init_cfg. The hand-written loop makes the same ``torch.nn.init`` calls in the same
order; the script first checks that all three give bitwise the same weights.

    python benchmarks/bench_init_weights.py [--repeats 5]

Prints seconds (median over repeats, the three runs interleaved) and two ratios:
``mmengine / initschema`` (> 1: initschema is faster) and ``initschema / hand``
(the engine's own overhead: compile, dispatch, provenance).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

import initschema as ins


def post_order(module: nn.Module) -> Iterator[nn.Module]:
    """Modules in nn.Module.apply order (children first)."""
    for child in module.children():
        yield from post_order(child)
    yield module


# ---------------------------------------------------------------- ViT-B
VIT_ROOT = [
    dict(
        type="TruncNormal",
        std=0.02,
        layer="Linear",
        override=dict(name="head", type="Constant", val=0),
    ),
    dict(type="Constant", val=1, bias=0, layer="LayerNorm"),
    dict(type="Kaiming", layer="Conv2d", mode="fan_in", nonlinearity="linear"),
]
VIT_BLOCK = dict(type="Xavier", layer="Linear", distribution="uniform")


def vit(base: Any, module_list: Any, dim: int = 768, depth: int = 12) -> nn.Module:
    class Block(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            super().__init__(dict(VIT_BLOCK))
            self.norm1 = nn.LayerNorm(dim)
            self.qkv = nn.Linear(dim, 3 * dim)
            self.proj = nn.Linear(dim, dim)
            self.norm2 = nn.LayerNorm(dim)
            self.fc1 = nn.Linear(dim, 4 * dim)
            self.fc2 = nn.Linear(4 * dim, dim)

    class ViT(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            super().__init__([dict(c) for c in VIT_ROOT])
            self.patch_embed = nn.Conv2d(3, dim, 16, 16)
            self.blocks = module_list([Block() for _ in range(depth)])
            self.norm = nn.LayerNorm(dim)
            self.head = nn.Linear(dim, 1000)

    return ViT()


def vit_by_hand(model: Any) -> None:
    init = nn.init
    with torch.no_grad():
        for m in post_order(model):
            if type(m) is nn.Linear:
                ins.trunc_normal_(m.weight, 0, 0.02, -2, 2)
                init.constant_(m.bias, 0)
        for m in post_order(model.head):
            init.constant_(m.weight, 0)
            init.constant_(m.bias, 0)
        for m in post_order(model):
            if type(m) is nn.LayerNorm:
                init.constant_(m.weight, 1)
                init.constant_(m.bias, 0)
        init.kaiming_normal_(model.patch_embed.weight, mode="fan_in", nonlinearity="linear")
        init.constant_(model.patch_embed.bias, 0)
        for block in model.blocks:
            for m in post_order(block):
                if type(m) is nn.Linear:
                    init.xavier_uniform_(m.weight)
                    init.constant_(m.bias, 0)


# ---------------------------------------------------------------- ResNet-50
RESNET_ROOT = [
    dict(type="Kaiming", layer="Conv2d"),
    dict(type="Constant", val=1, layer="_BatchNorm"),
]
RESNET_BLOCK = dict(type="Constant", val=0, override=dict(name="bn3"))


def resnet(base: Any, sequential: Any) -> nn.Module:
    class Bottleneck(base):  # type: ignore[misc, valid-type]
        def __init__(self, cin: int, mid: int) -> None:
            super().__init__(dict(RESNET_BLOCK))
            self.conv1 = nn.Conv2d(cin, mid, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(mid)
            self.conv2 = nn.Conv2d(mid, mid, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(mid)
            self.conv3 = nn.Conv2d(mid, mid * 4, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(mid * 4)
            self.downsample = (
                sequential(nn.Conv2d(cin, mid * 4, 1, bias=False), nn.BatchNorm2d(mid * 4))
                if cin != mid * 4
                else None
            )

    class ResNet(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            super().__init__([dict(c) for c in RESNET_ROOT])
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            stages, cin = [], 64
            for mid, blocks in ((64, 3), (128, 4), (256, 6), (512, 3)):
                layers = []
                for _ in range(blocks):
                    layers.append(Bottleneck(cin, mid))
                    cin = mid * 4
                stages.append(sequential(*layers))
            self.layers = sequential(*stages)
            self.fc = nn.Linear(2048, 1000)

    return ResNet()


def resnet_by_hand(model: Any) -> None:
    init = nn.init
    with torch.no_grad():
        for m in post_order(model):
            if type(m) is nn.Conv2d:
                init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        for m in post_order(model):
            if type(m) is nn.BatchNorm2d:
                init.constant_(m.weight, 1)
                init.constant_(m.bias, 0)
        for stage in model.layers:
            for block in stage:
                init.constant_(block.bn3.weight, 0)
                init.constant_(block.bn3.bias, 0)


# ---------------------------------------------------------------- harness
def reset(model: nn.Module) -> None:
    for m in model.modules():
        if hasattr(m, "_is_init"):
            m._is_init = False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from mmengine import model as mm
    from mmengine.logging import MMLogger

    MMLogger.get_current_instance().setLevel("ERROR")
    models: dict[str, tuple[Callable[..., nn.Module], tuple[str, str], Callable[[Any], None]]] = {
        "ViT-B (86M params)": (vit, ("BaseModule", "ModuleList"), vit_by_hand),
        "ResNet-50, nested (26M params)": (resnet, ("BaseModule", "Sequential"), resnet_by_hand),
    }
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, repeats={args.repeats}")
    print(
        f"{'model':32} {'mmengine s':>11} {'initschema s':>13} {'hand s':>8} "
        f"{'mmengine/initschema':>20} {'initschema/hand':>16}"
    )
    for name, (build, classes, by_hand) in models.items():
        subjects = {}
        for key, engine in (("mmengine", mm), ("initschema", ins), ("hand", ins)):
            torch.manual_seed(1)  # the same PyTorch defaults where no rule writes
            subjects[key] = build(*(getattr(engine, c) for c in classes))
        runs: dict[str, Callable[[], None]] = {
            "mmengine": subjects["mmengine"].init_weights,
            "initschema": subjects["initschema"].init_weights,
            "hand": functools.partial(by_hand, subjects["hand"]),
        }
        times: dict[str, list[float]] = {k: [] for k in runs}
        for repeat in range(args.repeats + 1):
            for key, run in runs.items():
                reset(subjects[key])
                torch.manual_seed(0)
                start = time.perf_counter()
                run()
                elapsed = time.perf_counter() - start
                if repeat:  # the first round warms up allocators and caches
                    times[key].append(elapsed)
        states = {k: m.state_dict() for k, m in subjects.items()}
        for key in ("initschema", "hand"):
            same = all(torch.equal(states["mmengine"][p], t) for p, t in states[key].items())
            if not same:
                raise SystemExit(f"{name}: {key} weights differ from MMEngine's")
        med = {k: statistics.median(v) for k, v in times.items()}
        print(
            f"{name:32} {med['mmengine']:11.3f} {med['initschema']:13.3f} {med['hand']:8.3f} "
            f"{med['mmengine'] / med['initschema']:20.3f} {med['initschema'] / med['hand']:16.3f}"
        )


if __name__ == "__main__":
    main()
