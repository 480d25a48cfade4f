"""Pins the values every built-in initializer writes, in faithful and seeded mode.

The faithful values are checked against MMEngine and torch.nn.init elsewhere
(parity/test_mmengine, kernels/test_modern); the seeded ones against their formulas
(sharding/test_streams). This file only pins them, with the RNG state a faithful run leaves,
so that moving code around cannot move a bit unnoticed: a change here is a new stream
(seeded) or a break of MMEngine parity (faithful), never a refactor.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
import torch
import torch.nn as nn

import initschema as ins


class _Net(nn.Module):
    """Every kind of tensor the initializers meet: linears (one tile and more), convs,
    an embedding, norms, a fused qkv and a depth-indexed stack."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(300, 260)
        self.small = nn.Linear(7, 5)
        self.conv = nn.Conv2d(3, 16, 5)
        self.conv1d = nn.Conv1d(4, 4, 3)
        self.emb = nn.Embedding(50, 12)
        self.norm = nn.LayerNorm(12)
        self.qkv = nn.Linear(12, 36)
        self.blocks = nn.ModuleList(nn.Linear(12, 12) for _ in range(3))


def _digest(model: nn.Module, extra: bytes = b"") -> str:
    digest = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().contiguous().numpy().tobytes())
    digest.update(extra)
    return digest.hexdigest()[:16]


# One init_cfg per initializer and option; layers chosen so that each case writes
# something of every shape it can.
CASES: dict[str, Any] = {
    "Constant": dict(type="Constant", val=0.5, bias=0.1, layer=["Linear", "Conv2d"]),
    "Xavier": dict(type="Xavier", layer=["Linear", "Conv2d", "Conv1d"]),
    "Xavier-uniform": dict(type="Xavier", gain=2, distribution="uniform", layer="Linear"),
    "Normal": dict(type="Normal", std=0.02, layer=["Linear", "Embedding", "Conv2d"]),
    "TruncNormal": dict(type="TruncNormal", std=0.02, layer="Linear"),
    "TruncNormal-bounds-std": dict(
        type="TruncNormal", std=0.5, a=-2, b=2, bounds="std", layer=["Linear", "Conv2d"]
    ),
    "Uniform": dict(type="Uniform", a=-1, b=1, layer=["Linear", "Conv1d"]),
    "Kaiming": dict(type="Kaiming", layer=["Conv2d", "Conv1d", "Linear"]),
    "Kaiming-fan_in-uniform": dict(
        type="Kaiming", mode="fan_in", distribution="uniform", a=1, layer="Linear"
    ),
    "Caffe2Xavier": dict(type="Caffe2Xavier", layer=["Conv2d", "Linear"]),
    "bias_prob": dict(type="Normal", std=0.01, bias_prob=0.01, layer="Linear"),
    "Zeros": dict(type="Zeros", layer="Linear"),
    "Ones": dict(type="Ones", layer="LayerNorm"),
    "Orthogonal": dict(type="Orthogonal", gain=1.5, layer=["Linear", "Conv2d"]),
    "Dirac": dict(type="Dirac", layer=["Conv2d", "Conv1d"]),
    "Eye": dict(type="Eye", layer="Linear"),
    "VarianceScaling": dict(
        type="VarianceScaling",
        scale=2,
        mode="fan_avg",
        distribution="truncated_normal",
        layer=["Linear", "Conv2d"],
    ),
    "VarianceScaling-uniform": dict(
        type="VarianceScaling", mode="fan_out", distribution="uniform", layer="Linear"
    ),
    "LecunNormal": dict(type="LecunNormal", layer=["Linear", "Conv2d"]),
    "LecunUniform": dict(type="LecunUniform", layer="Linear"),
    "SmallInit": dict(type="SmallInit", d=12, layer="Linear"),
    "WangInit": dict(type="WangInit", d=12, n_layers=3, layer="Linear"),
    "splits": dict(
        type="Xavier", layer="Linear", override=dict(name="qkv", type="Xavier", splits=[12, 12, 12])
    ),
    "fan_axes": dict(type="Kaiming", fan_axes={"in": 0, "out": 1}, layer="Linear"),
    "depth-layer_id_regex": dict(
        type="Normal", std=0.02, layer_id_regex=r"blocks\.(\d+)\.", params=["blocks.*.weight"]
    ),
    "depth-n_layers": dict(type="TruncNormal", std=0.02, n_layers=3, params=["blocks.**"]),
    "params-and-overrides": [
        dict(type="Normal", std=0.02, layer="Linear"),
        dict(type="Constant", val=1, bias=0, layer="LayerNorm"),
        dict(type="Kaiming", params=["conv*.weight"], override=dict(name="small", type="Uniform")),
    ],
}

# Seeded values for CASES (stream tiles-v1) and faithful values with the RNG state after.
SEEDED = {
    "Constant": "d36a769993dede4a",
    "Xavier": "d396e93bccd8854d",
    "Xavier-uniform": "be98d0f705045b04",
    "Normal": "aa432ebd9aea715c",
    "TruncNormal": "3af09bd71b6d6dad",
    "TruncNormal-bounds-std": "09b1930df56d070f",
    "Uniform": "2e1d42ba371aaf31",
    "Kaiming": "d33e3254c7ef9a39",
    "Kaiming-fan_in-uniform": "26fd56836c516b76",
    "Caffe2Xavier": "5d0a1cbdb8095497",
    "bias_prob": "4acdc537f7e381b7",
    "Zeros": "b10355b024c14e11",
    "Ones": "33c3d932c65381b5",
    "Orthogonal": "ff6092144cd174bb",
    "Dirac": "a7d3d7082b542f05",
    "Eye": "19de807fc1cfed1a",
    "VarianceScaling": "155ae7810e05437b",
    "VarianceScaling-uniform": "afebc54b81992509",
    "LecunNormal": "c2aec2c48824f371",
    "LecunUniform": "380a744b8231f95c",
    "SmallInit": "f2a2bbaacfb2f300",
    "WangInit": "aa4e89c439309829",
    "splits": "03e484717f9f4db8",
    "fan_axes": "2790c52d404993de",
    "depth-layer_id_regex": "aee580575ea6f113",
    "depth-n_layers": "df94949075a2b8f1",
    "params-and-overrides": "1e25618b5488a61f",
}
FAITHFUL = {
    "Constant": "2ac83f0134015e37",
    "Xavier": "4f96400d3fd7fa12",
    "Xavier-uniform": "d78d3a3e7936ff67",
    "Normal": "e9676a9314995028",
    "TruncNormal": "b53f600f458764fa",
    "TruncNormal-bounds-std": "9a0048ab4dc70ce3",
    "Uniform": "57183a450983d003",
    "Kaiming": "23441bb432912769",
    "Kaiming-fan_in-uniform": "d943ca010bc1b11c",
    "Caffe2Xavier": "cb64a745f1fa8037",
    "bias_prob": "4b9da0c99084bb4d",
    "Zeros": "241cc39a0fe0a2c8",
    "Ones": "6a082f1ecd1928fa",
    "Orthogonal": "419f9e5ace24fc37",
    "Dirac": "0006faa833fe3556",
    "Eye": "81b7fdaa077162b8",
    "VarianceScaling": "a0a0043ea363943f",
    "VarianceScaling-uniform": "88f87aad2006bd57",
    "LecunNormal": "d941ddf28ff7bec8",
    "LecunUniform": "192a084bd0b65afc",
    "SmallInit": "d11c67186238cbb0",
    "WangInit": "20cf7334e30bcccb",
    "splits": "b783390720cf0439",
    "fan_axes": "03422ed4f665cf52",
    "depth-layer_id_regex": "9a848c8d4aae3391",
    "depth-n_layers": "977b38c7f641880b",
    "params-and-overrides": "91c65098d06c2862",
}


def _model() -> nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(1)
        return _Net()


@pytest.mark.parametrize("name", sorted(CASES))
def test_seeded_values_are_pinned(name: str) -> None:
    """plan.execute(seed=…) writes the pinned values (stream tiles-v1)."""
    model = _model()
    ins.compile_plan(model, CASES[name]).execute(seed=20261206)
    assert _digest(model) == SEEDED[name]


@pytest.mark.parametrize("name", sorted(CASES))
def test_faithful_values_are_pinned(name: str) -> None:
    """plan.execute() after torch.manual_seed writes the pinned values and leaves the
    pinned RNG state (MMEngine's draws, in MMEngine's order)."""
    model = _model()
    plan = ins.compile_plan(model, CASES[name])
    with torch.random.fork_rng():
        torch.manual_seed(20261206)
        plan.execute()
        rng = torch.get_rng_state().numpy().tobytes()
    assert _digest(model, rng) == FAITHFUL[name]
