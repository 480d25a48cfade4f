"""Model zoo for the differential tests: every model is built twice, once on MMEngine's
``BaseModule`` family and once on initschema's, from the same code."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class Kit:
    """The four container classes of one engine."""

    BaseModule: type
    Sequential: type
    ModuleList: type
    ModuleDict: type


def kits() -> dict[str, Kit]:
    import initschema as ins

    found = {"initschema": Kit(ins.BaseModule, ins.Sequential, ins.ModuleList, ins.ModuleDict)}
    try:
        from mmengine import model as mm
    except ImportError:
        return found
    found["mmengine"] = Kit(mm.BaseModule, mm.Sequential, mm.ModuleList, mm.ModuleDict)
    return found


def cfg(value: Any) -> Any:
    """A fresh deep copy, so neither engine can see the other's mutations."""
    return copy.deepcopy(value)


def toy_net(kit: Kit, init_cfg: Any = None) -> nn.Module:
    """Conv2d ×2 + BN + Linear, the shape of MMEngine's tutorial model."""

    class ToyNet(kit.BaseModule):  # type: ignore[misc, name-defined]
        def __init__(self, init_cfg: Any = None) -> None:
            super().__init__(init_cfg)
            self.conv1 = nn.Conv2d(3, 8, 3)
            self.conv2 = nn.Conv2d(8, 8, 3)
            self.bn = nn.BatchNorm2d(8)
            self.fc = nn.Linear(8, 10)

    return ToyNet(cfg(init_cfg))


def bottleneck(kit: Kit, cin: int, mid: int, init_cfg: Any = None) -> nn.Module:
    class Bottleneck(kit.BaseModule):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__(cfg(init_cfg))
            self.conv1 = nn.Conv2d(cin, mid, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(mid)
            self.conv2 = nn.Conv2d(mid, mid, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(mid)
            self.conv3 = nn.Conv2d(mid, cin, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(cin)

    return Bottleneck()


def resnet(
    kit: Kit,
    init_cfg: Any = None,
    block_cfg: Any = None,
    head_cfg: Any = None,
    width: int = 16,
    depth: int = 2,
) -> nn.Module:
    """ResNet-shaped: stem, stages as Sequential of BaseModule blocks, a head with its own
    init_cfg, a plain nn.Sequential holding a BaseModule (unreachable in MMEngine)."""

    class Head(kit.BaseModule):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__(cfg(head_cfg))
            self.fc = nn.Linear(width, 10)
            self.cls = nn.Conv2d(width, 5, 1)

    class ResNet(kit.BaseModule):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__(cfg(init_cfg))
            self.stem = nn.Conv2d(3, width, 3)
            self.stem_bn = nn.BatchNorm2d(width)
            self.layers = kit.ModuleList(
                [
                    kit.Sequential(
                        *[bottleneck(kit, width, width // 2, block_cfg) for _ in range(depth)]
                    )
                    for _ in range(2)
                ]
            )
            self.plain = nn.Sequential(bottleneck(kit, width, 4, block_cfg), nn.ReLU())
            self.heads = kit.ModuleDict({"main": Head(), "aux": nn.Linear(width, 3)})

    return ResNet()


def vit(
    kit: Kit,
    init_cfg: Any = None,
    block_cfg: Any = None,
    dim: int = 32,
    depth: int = 2,
    heads: int = 4,
) -> nn.Module:
    """ViT-shaped: patch embed, cls token, blocks with LayerNorm/attention/MLP, a head."""

    class Block(kit.BaseModule):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__(cfg(block_cfg))
            self.norm1 = nn.LayerNorm(dim)
            self.attn = nn.MultiheadAttention(dim, heads)
            self.norm2 = nn.LayerNorm(dim)
            self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    class ViT(kit.BaseModule):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__(cfg(init_cfg))
            self.patch_embed = nn.Conv2d(3, dim, 4, 4)
            self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
            self.blocks = kit.ModuleList([Block() for _ in range(depth)])
            self.norm = nn.LayerNorm(dim)
            self.head = nn.Linear(dim, 10)

    return ViT()


class UserConv(nn.Module):
    """A plain module with its own init_weights (MMEngine's tutorial ToyConv)."""

    def __init__(self) -> None:
        super().__init__()
        self.custom_weight = nn.Parameter(torch.empty(1, 1, 1, 1))
        self.custom_bias = nn.Parameter(torch.empty(1))

    def init_weights(self) -> None:
        with torch.no_grad():
            self.custom_weight.fill_(1)
            self.custom_bias.normal_()


def with_user_init(kit: Kit, init_cfg: Any = None, child_cfg: Any = None) -> nn.Module:
    """A BaseModule with a plain child that defines init_weights, and a BaseModule child
    whose init_weights calls super() and then writes more."""

    class Child(kit.BaseModule):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__(cfg(child_cfg))
            self.conv = nn.Conv2d(4, 4, 1)
            self.norm = nn.BatchNorm2d(4)

        def init_weights(self) -> None:
            super().init_weights()
            with torch.no_grad():
                self.norm.weight.zero_()

    class Net(kit.BaseModule):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__(cfg(init_cfg))
            self.conv = nn.Conv2d(3, 4, 3)
            self.user = UserConv()
            self.child = Child()
            self.fc = nn.Linear(4, 2)

    return Net()


def namespace(**kwargs: Any) -> SimpleNamespace:
    return SimpleNamespace(**kwargs)
