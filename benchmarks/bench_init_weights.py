"""init_weights() speed: initschema against MMEngine and against the kernels alone.

Six models, each built from the same code on MMEngine's BaseModule family and on
initschema's: ViT-B (86M parameters), a deep ViT (d=256, 48 blocks), a ResNet-50
whose bottlenecks are nested BaseModules, 1,250 small Linear+LayerNorm blocks
(5,000 tensors), 1,000 blocks whose own init_weights calls super() and writes
more, and a 400-deep chain of nested BaseModules. One thread; the runs of a pair
are interleaved and each ratio is taken within its pair.

    python benchmarks/bench_init_weights.py [--repeats 5] [--models vit-b,chain-400]

Columns:

- ``faithful``: MMEngine's ``init_weights`` time / initschema's (> 1: faster),
  after checking both give bitwise the same weights and RNG state.
- ``engine µs/tensor``: initschema's ``init_weights`` time minus a loop making
  the same kernel calls MMEngine makes (taken from the plan beforehand), per
  written tensor: what compile, lints, dispatch and provenance cost.
- ``seeded``: ``plan.execute(seed=s)`` time (compile excluded) / a loop writing
  each tensor once with its final initializer from its own generator (models
  without user init_weights).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

import initschema as ins
from initschema.kernels.builtin import write_tensor
from initschema.sharding.streams import seed_for

sys.setrecursionlimit(20_000)  # MMEngine's init_weights recurses per level of the chain


# ---------------------------------------------------------------- models
def vit(kit: Any, dim: int = 768, depth: int = 12) -> nn.Module:
    class Block(kit.BaseModule):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__(dict(type="Xavier", layer="Linear", distribution="uniform"))
            self.norm1 = nn.LayerNorm(dim)
            self.qkv = nn.Linear(dim, 3 * dim)
            self.proj = nn.Linear(dim, dim)
            self.norm2 = nn.LayerNorm(dim)
            self.fc1 = nn.Linear(dim, 4 * dim)
            self.fc2 = nn.Linear(4 * dim, dim)

    class ViT(kit.BaseModule):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__(
                [
                    dict(
                        type="TruncNormal",
                        std=0.02,
                        layer="Linear",
                        override=dict(name="head", type="Constant", val=0),
                    ),
                    dict(type="Constant", val=1, bias=0, layer="LayerNorm"),
                    dict(type="Kaiming", layer="Conv2d", mode="fan_in", nonlinearity="linear"),
                ]
            )
            self.patch_embed = nn.Conv2d(3, dim, 16, 16)
            self.blocks = kit.ModuleList([Block() for _ in range(depth)])
            self.norm = nn.LayerNorm(dim)
            self.head = nn.Linear(dim, 1000)

    return ViT()


def resnet(kit: Any) -> nn.Module:
    class Bottleneck(kit.BaseModule):  # type: ignore[misc, name-defined]
        def __init__(self, cin: int, mid: int) -> None:
            super().__init__(dict(type="Constant", val=0, override=dict(name="bn3")))
            self.conv1 = nn.Conv2d(cin, mid, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(mid)
            self.conv2 = nn.Conv2d(mid, mid, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(mid)
            self.conv3 = nn.Conv2d(mid, mid * 4, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(mid * 4)
            self.downsample = (
                kit.Sequential(nn.Conv2d(cin, mid * 4, 1, bias=False), nn.BatchNorm2d(mid * 4))
                if cin != mid * 4
                else None
            )

    class ResNet(kit.BaseModule):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__(
                [
                    dict(type="Kaiming", layer="Conv2d"),
                    dict(type="Constant", val=1, layer="_BatchNorm"),
                ]
            )
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            stages, cin = [], 64
            for mid, blocks in ((64, 3), (128, 4), (256, 6), (512, 3)):
                layers = []
                for _ in range(blocks):
                    layers.append(Bottleneck(cin, mid))
                    cin = mid * 4
                stages.append(kit.Sequential(*layers))
            self.layers = kit.Sequential(*stages)
            self.fc = nn.Linear(2048, 1000)

    return ResNet()


def small_blocks(kit: Any, count: int = 1250, dim: int = 32) -> nn.Module:
    class Block(kit.BaseModule):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(dim, dim)
            self.norm = nn.LayerNorm(dim)

    class Net(kit.BaseModule):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__(
                [
                    dict(type="Normal", layer="Linear", std=0.02),
                    dict(type="Constant", val=1, layer="LayerNorm"),
                ]
            )
            self.blocks = kit.ModuleList([Block() for _ in range(count)])

    return Net()


def user_blocks(kit: Any, count: int = 1000, dim: int = 32) -> nn.Module:
    class Block(kit.BaseModule):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__(dict(type="Normal", layer="Linear", std=0.02))
            self.fc = nn.Linear(dim, dim)
            self.norm = nn.LayerNorm(dim)

        def init_weights(self) -> None:
            super().init_weights()
            with torch.no_grad():
                self.norm.weight.fill_(0.5)

    class Net(kit.BaseModule):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__(dict(type="Constant", val=1, layer="LayerNorm"))
            self.blocks = kit.ModuleList([Block() for _ in range(count)])

    return Net()


def chain(kit: Any, depth: int = 400, dim: int = 16) -> nn.Module:
    class Node(kit.BaseModule):  # type: ignore[misc, name-defined]
        def __init__(self, level: int) -> None:
            super().__init__(dict(type="Normal", std=0.02, override=dict(name="fc")))
            self.fc = nn.Linear(dim, dim)
            self.next = Node(level - 1) if level > 1 else None

    return Node(depth)


MODELS: dict[str, tuple[str, Callable[[Any], nn.Module]]] = {
    "vit-b": ("ViT-B (86M)", vit),
    "vit-deep": ("ViT d=256 × 48", functools.partial(vit, dim=256, depth=48)),
    "resnet-50": ("ResNet-50, nested", resnet),
    "small-1250": ("1,250 small blocks", small_blocks),
    "user-1000": ("1,000 blocks, user init", user_blocks),
    "chain-400": ("400-deep chain", chain),
}


# ---------------------------------------------------------------- baselines
def kernel_calls(plan: ins.InitPlan) -> list[Callable[[], None]]:
    """Every kernel call of a faithful run, in order, as closures: the same calls MMEngine
    makes, with nothing around them (user init_weights are called as they are)."""
    calls: list[Callable[[], None]] = []
    for action in plan.actions:
        if action.kind == "write":
            for name in action.tensors:
                tensor = getattr(action.target, name)
                calls.append(functools.partial(write_tensor, action.init, name, tensor))
        elif action.kind == "call":
            calls.append(getattr(action.target, "init_weights"))  # noqa: B009
    return calls


def seeded_calls(plan: ins.InitPlan, seed: int) -> list[Callable[[], None]]:
    """One write per tensor, its final initializer, its own generator."""
    final: dict[str, tuple[Any, str, torch.Tensor]] = {}
    for action in plan.actions:
        if action.kind == "write":
            for name, path in zip(action.tensors, action.params, strict=True):
                final[path] = (action.init, name, getattr(action.target, name))

    def write(init: Any, name: str, tensor: torch.Tensor, path: str) -> None:
        generator = torch.Generator()
        generator.manual_seed(seed_for(seed, path))
        write_tensor(init, name, tensor, generator)

    return [functools.partial(write, *value, path) for path, value in final.items()]


def run_all(calls: list[Callable[[], None]]) -> None:
    with torch.no_grad():
        for call in calls:
            call()


def reset(model: nn.Module) -> None:
    for m in model.modules():
        if hasattr(m, "_is_init"):
            m._is_init = False


def timed(run: Callable[[], Any]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def ratio_text(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}–{max(values):.2f})"


def bench(key: str, repeats: int) -> None:
    from mmengine import model as mm

    label, build = MODELS[key]
    models = {}
    for name, kit in (("mmengine", mm), ("initschema", ins), ("kernels", ins)):
        torch.manual_seed(1)
        models[name] = build(kit)
    plan = ins.compile_plan(models["kernels"], log=False)
    calls = kernel_calls(plan)
    written = sum(len(a.tensors) for a in plan.actions if a.kind == "write")
    user = any(a.kind == "call" for a in plan.actions)

    states = {}
    for name, model in models.items():
        torch.manual_seed(0)
        if name == "kernels":
            run_all(calls)
        else:
            model.init_weights()  # type: ignore[operator]
        state = {k: v.clone() for k, v in model.state_dict().items()}
        states[name] = (state, torch.get_rng_state())
    for name in ("initschema", "kernels"):
        same = all(torch.equal(states["mmengine"][0][k], v) for k, v in states[name][0].items())
        if not same or not torch.equal(states["mmengine"][1], states[name][1]):
            raise SystemExit(f"{label}: {name} differs from MMEngine (weights or RNG)")

    faithful, engine = [], []
    for repeat in range(repeats + 1):
        times = {}
        for name, model in models.items():
            reset(model)
            torch.manual_seed(0)
            run = model.init_weights if name != "kernels" else functools.partial(run_all, calls)
            times[name] = timed(run)  # type: ignore[arg-type]
        if repeat:  # the first round warms allocators and caches
            faithful.append(times["mmengine"] / times["initschema"])
            engine.append((times["initschema"] - times["kernels"]) / written * 1e6)

    seeded_text = "-"
    if not user:
        model = models["initschema"]
        reset(model)
        seeded_plan = ins.compile_plan(model, log=False)
        hand = seeded_calls(seeded_plan, 7)
        seeded = []
        for repeat in range(repeats + 1):
            reset(model)
            ours = timed(functools.partial(seeded_plan.execute, seed=7))
            theirs = timed(functools.partial(run_all, hand))
            if repeat:
                seeded.append(ours / theirs)
        seeded_text = ratio_text(seeded)
    print(
        f"{label:26} {written:>7} {ratio_text(faithful):>20} "
        f"{statistics.median(engine):>8.1f} {seeded_text:>20}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args()

    import logging

    from mmengine.logging import MMLogger

    MMLogger.get_current_instance().setLevel("ERROR")
    logging.getLogger("initschema").setLevel(logging.WARNING)
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 thread, repeats={args.repeats}; ratios: median (min–max)")
    print(f"{'model':26} {'tensors':>7} {'faithful':>20} {'µs/tensor':>8} {'seeded/hand':>20}")
    for key in args.models.split(","):
        bench(key, args.repeats)


if __name__ == "__main__":
    main()
