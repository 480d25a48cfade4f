"""The rank side of tests/sharding/test_sharded.py: the models, what each rank process runs, and
:func:`launch`, which starts one process per rank on this machine's loopback (gloo, CPU).

A rank process (forked from a launcher process that imported torch once) runs every
case in turn, then ``torch.save`` of ``{case: result}`` to ``OUTDIR/rank{r}.pt``. A case
returns a model (which every rank then gathers with ``DTensor.full_tensor``, rank 0
keeping the state) or a dict of plain results. A case that raises on any rank is
recorded, with every rank's traceback, and gathers nothing, so the ranks never wait on
each other forever.
"""

from __future__ import annotations

import functools
import math
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
from torch import nn

import initschema as ins

SEED = 1234

VIT_CFG = [
    dict(type="Kaiming", layer="Conv2d"),
    dict(type="TruncNormal", layer="Linear", std=0.02),
    dict(type="Constant", layer="LayerNorm", val=1, bias=0),
    dict(type="Normal", layer="Embedding", std=0.02),
]
RESNET_CFG = [
    dict(type="Kaiming", layer="Conv2d", mode="fan_out", distribution="uniform"),
    dict(type="Constant", layer="BatchNorm2d", val=1, bias=0),
    dict(type="Xavier", layer="Linear", distribution="uniform"),
]
MIXED_CFG = [
    dict(type="Xavier", layer="Linear"),
    dict(type="Uniform", layer="Conv2d", a=-0.5, b=0.5),
    dict(type="Normal", layer="Embedding", mean=1, std=0.5),
    dict(type="Constant", layer="LayerNorm", val=2, bias=-1),
]
MEMORY_CFG = [dict(type="Normal", layer="Linear", std=0.02)]
CUSTOM_CFG = [
    dict(type="ShardTestOrthogonal", layer="Linear", gain=1.5),
    dict(type="ShardTestFanUniform", layer=["Conv2d", "Embedding"]),
    dict(type="Constant", layer="LayerNorm", val=2, bias=-1),
]
GATED_CFG = [dict(type="Normal", layer="Linear", std=0.02)]
GATE_CALL = dict(type="Call", method="reset_gate", layer="Gate")
LINEAR_CALL = dict(type="Call", method="reset_parameters", layer="Linear")
GATE_VALUE = 0.25

# Widths are chosen so that dim 0 rarely divides by the world size: 30 and 45 split
# unevenly over 4 ranks, a head of 3 leaves rank 3 of 4 an empty shard.
DIM, HIDDEN, CLASSES = 30, 45, 3


class Attention(nn.Module):
    def __init__(self, reordered: bool = False) -> None:
        super().__init__()
        names = ["proj", "qkv"] if reordered else ["qkv", "proj"]
        shapes = {"qkv": (DIM, 3 * DIM), "proj": (DIM, DIM)}
        for name in names:
            self.add_module(name, nn.Linear(*shapes[name]))


class Mlp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(DIM, HIDDEN)
        self.fc2 = nn.Linear(HIDDEN, DIM)


class Block(nn.Module):
    def __init__(self, reordered: bool = False) -> None:
        super().__init__()
        parts: dict[str, Callable[[], nn.Module]] = {
            "norm1": lambda: nn.LayerNorm(DIM),
            "attn": lambda: Attention(reordered),
            "norm2": lambda: nn.LayerNorm(DIM),
            "mlp": Mlp,
        }
        for name in reversed(parts) if reordered else parts:
            self.add_module(name, parts[name]())


class ViT(nn.Module):
    """ViT-shaped: patch embedding, position table, pre-norm blocks, head.

    The position table is long (4,099 × 30) so that a writer working in tiles needs
    several of them for one shard."""

    def __init__(self, depth: int = 3, reordered: bool = False, extra: bool = False) -> None:
        super().__init__()
        parts: dict[str, Callable[[], nn.Module]] = {
            "patch_embed": lambda: nn.Conv2d(3, DIM, 4, stride=4),
            "pos_embed": lambda: nn.Embedding(4099, DIM),
            "blocks": lambda: nn.ModuleList(Block(reordered) for _ in range(depth)),
            "norm": lambda: nn.LayerNorm(DIM),
            "head": lambda: nn.Linear(DIM, CLASSES),
        }
        for name in reversed(parts) if reordered else parts:
            self.add_module(name, parts[name]())
        if extra:
            self.blocks.append(Block())
            self.pre_logits = nn.Linear(DIM, DIM)

    def shard_units(self) -> Iterator[nn.Module]:
        yield from self.blocks


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        if cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout)
            )


class ResNet(nn.Module):
    """ResNet-shaped: stem, two stages of basic blocks (the second widening), head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 13, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(13)
        self.layer1 = nn.Sequential(BasicBlock(13, 13), BasicBlock(13, 13))
        self.layer2 = nn.Sequential(BasicBlock(13, 26), BasicBlock(26, 26))
        self.fc = nn.Linear(26, CLASSES)

    def shard_units(self) -> Iterator[nn.Module]:
        yield from self.layer1
        yield from self.layer2


class Mixed(nn.Module):
    """One of each layer the rules cover, for hand-placed DTensor parameters; the
    embedding (4,099 × 33) spans several tiles of the seeded streams."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(10, 7)
        self.fc2 = nn.Linear(7, CLASSES)
        self.conv = nn.Conv2d(5, 6, 3)
        self.embed = nn.Embedding(4099, 33)
        self.norm = nn.LayerNorm(7)


MODELS: dict[str, tuple[Callable[[], nn.Module], list[dict[str, Any]]]] = {
    "vit": (ViT, VIT_CFG),
    "vit_reordered": (lambda: ViT(reordered=True), VIT_CFG),
    "vit_extra": (lambda: ViT(extra=True), VIT_CFG),
    "resnet": (ResNet, RESNET_CFG),
    "vit_bf16": (lambda: ViT().to(torch.bfloat16), VIT_CFG),
}


def fill_local(tensor: torch.Tensor, value: float) -> None:
    """Fill this rank's part of ``tensor`` (all of it, when it is not a DTensor)."""
    from torch.distributed.tensor import DTensor

    with torch.no_grad():
        (tensor.to_local() if isinstance(tensor, DTensor) else tensor).fill_(value)


class Gate(nn.Module):
    """A parameter of its own, 5 rows (2, 2, 1, 0 over 4 ranks), and a method that fills
    each rank's part with a constant: right on any placement, for a Call rule to run."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(5, DIM))

    def reset_gate(self) -> None:
        fill_local(self.weight, GATE_VALUE)


class UserGate(ins.BaseModule):
    """Gate's parameter, filled (each rank's part) by a user-defined init_weights that is
    not declared shard-safe: refused on sharded parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(5, DIM))

    def init_weights(self) -> None:
        fill_local(self.weight, GATE_VALUE)


class SafeUserGate(ins.BaseModule):
    """UserGate with its init_weights declared ``@ins.shard_safe``."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(5, DIM))

    @ins.shard_safe
    def init_weights(self) -> None:
        fill_local(self.weight, GATE_VALUE)


class Gated(ins.BaseModule):
    """A Linear under GATED_CFG and a gate: ``Gated(UserGate())`` plans the gate's own
    init_weights (``compile_plan(model)``), ``Gated(Gate())`` a Call rule's method."""

    def __init__(self, gate: nn.Module) -> None:
        super().__init__(init_cfg=GATED_CFG)
        self.fc = nn.Linear(DIM, HIDDEN)
        self.gate = gate


GATES: dict[str, Callable[[], nn.Module]] = {
    "gate": Gate,
    "user": UserGate,
    "safe_user": SafeUserGate,
}


class OrthogonalInit(ins.WeightInit):
    """Not elementwise (no ``init_values``): seeded mode computes the whole logical tensor
    from one generator and keeps a shard's slice."""

    fan_based = True
    gain: float = 1.0

    def init_weight(self, weight: torch.Tensor, generator: torch.Generator | None = None) -> None:
        nn.init.orthogonal_(weight, self.gain, generator=generator)


class FanUniformInit(ins.WeightInit):
    """Elementwise (``init_values``): U(-b, b) with b = 1/sqrt(fan_in) of the logical
    shape, so a shard that used its own shape would show."""

    fan_based = True

    def init_weight(self, weight: torch.Tensor, generator: torch.Generator | None = None) -> None:
        self.init_values(weight.view(-1), generator, tuple(weight.shape))

    def init_values(self, values: Any, generator: Any, shape: tuple[int, ...]) -> None:
        bound = 1 / math.sqrt(math.prod(shape[1:]))
        values.uniform_(-bound, bound, generator=generator)


def register_custom_initializers() -> None:
    """Register the user initializers CUSTOM_CFG names (again: a no-op). The rank
    processes and the test process each need it, as users' own processes would."""
    ins.register_initializer("ShardTestOrthogonal")(OrthogonalInit)
    ins.register_initializer("ShardTestFanUniform")(FanUniformInit)


def checkpoint_state(name: str) -> dict[str, torch.Tensor]:
    """What the checkpoint of MODELS[name] (``"vit"``) or of Mixed (``"mixed"``) holds:
    random values for some of its tensors (``head.weight`` as float16, converted on load),
    the same in every process."""
    with torch.device("meta"):
        model = MODELS[name][0]() if name in MODELS else Mixed()
    if name == "mixed":
        keys = ["fc1.weight", "conv.weight", "embed.weight"]
    else:
        keys = [k for k in model.state_dict() if k.startswith(("pos_embed.", "blocks.1.", "head."))]
    generator = torch.Generator().manual_seed(7)
    state = {}
    for key in keys:
        value = torch.randn(model.state_dict()[key].shape, generator=generator)
        state[key] = value.half() if key == "head.weight" else value
    return state


PREFIX = "backbone."
"""Under which the torch file holds its tensors (and a rule with ``prefix`` finds them)."""


def pretrained_rule(name: str, fmt: str, folder: Path) -> dict[str, Any]:
    """Write ``checkpoint_state(name)`` into ``folder`` as a ``torch.save`` file (keys under
    PREFIX, next to one the prefix leaves out) or a ``.safetensors`` file (keys as they
    are); the Pretrained rule that loads it."""
    state = checkpoint_state(name)
    if fmt == "safetensors":
        from safetensors.torch import save_file

        path = folder / f"{name}.safetensors"
        save_file(state, str(path))
        return dict(type="Pretrained", checkpoint=str(path))
    path = folder / f"{name}.pth"
    torch.save({"neck.weight": torch.ones(2), **{PREFIX + k: v for k, v in state.items()}}, path)
    return dict(type="Pretrained", checkpoint=str(path), prefix=PREFIX.rstrip("."))


def placements_for(layout: str, tensor: torch.Tensor) -> tuple[Any, ...]:
    """The placements of one parameter under a named layout (one of :data:`LAYOUTS_1D`,
    :data:`LAYOUTS_2D`)."""
    from torch.distributed.tensor import Replicate, Shard

    matrix = tensor.dim() >= 2
    if layout == "shard1":
        return (Shard(1) if matrix else Shard(0),)
    if layout == "shard_last":
        return (Shard(tensor.dim() - 1),)
    if layout == "replicate":
        return (Replicate(),)
    if layout == "weight_shard0_bias_replicate":
        return (Shard(0) if matrix else Replicate(),)
    if layout == "2d_shard0_shard1":
        return (Shard(0), Shard(1) if matrix else Replicate())
    if layout == "2d_shard0_shard0":
        return (Shard(0), Shard(0))
    if layout == "2d_replicate_shard1":
        return (Replicate(), Shard(1) if matrix else Shard(0))
    raise ValueError(f"unknown layout {layout!r}")


LAYOUTS_1D = ["shard1", "shard_last", "replicate", "weight_shard0_bias_replicate"]
LAYOUTS_2D = ["2d_shard0_shard1", "2d_shard0_shard0", "2d_replicate_shard1"]


# ---------------------------------------------------------------- rank side


def _mesh(layout: str = "") -> Any:
    import torch.distributed as dist

    world = dist.get_world_size()
    return _mesh_of_shape((2, world // 2) if layout.startswith("2d") else (world,))


@functools.cache
def _mesh_of_shape(shape: tuple[int, ...]) -> Any:
    from torch.distributed.device_mesh import init_device_mesh

    return init_device_mesh("cpu", shape)


def fully_sharded(name: str, only: str = "") -> tuple[nn.Module, Any]:
    """MODELS[name] built on meta, every shard unit and then the root under fully_shard
    (with ``only``, that submodule alone: the rest stays plain), and its plan."""
    from torch.distributed.fsdp import fully_shard

    import initschema as ins

    factory, cfg = MODELS[name]
    with torch.device("meta"):
        model = factory()
    mesh = _mesh()
    if only:
        fully_shard(model.get_submodule(only), mesh=mesh)
    else:
        for unit in model.shard_units():  # type: ignore[operator]
            fully_shard(unit, mesh=mesh)
        fully_shard(model, mesh=mesh)
    return model, ins.compile_plan(model, cfg)


def distributed_mixed(layout: str, fill: float = float("nan"), only: str = "") -> nn.Module:
    """Mixed on CPU, every parameter (with ``only``, that submodule's) replaced by a DTensor
    under ``layout``, filled with ``fill`` (NaN: an element no one writes shows)."""
    from torch.distributed.tensor import distribute_tensor

    model = Mixed()
    mesh = _mesh(layout)
    for module in (model.get_submodule(only) if only else model).modules():
        for name, param in list(module.named_parameters(recurse=False)):
            full = torch.full_like(param, fill)
            dt = distribute_tensor(full, mesh, placements_for(layout, param))
            module.register_parameter(name, nn.Parameter(dt, requires_grad=param.requires_grad))
    return model


def case_materialize(name: str) -> nn.Module:
    import initschema as ins

    model, plan = fully_sharded(name)
    ins.materialize(model, "cpu", seed=SEED, plan=plan)
    return model


def case_execute(layout: str) -> nn.Module:
    import initschema as ins

    model = distributed_mixed(layout)
    ins.compile_plan(model, MIXED_CFG).execute(seed=SEED)
    return model


OUTDIR = Path()
"""This rank's output folder (set by :func:`rank_main`)."""


def own_folder() -> Path:
    """A folder of this rank's own: each rank writes its copy of a checkpoint, so that no
    rank waits for another to have written it."""
    import torch.distributed as dist

    folder = OUTDIR / f"rank{dist.get_rank()}-files"
    folder.mkdir(exist_ok=True)
    return folder


def case_pretrained(fmt: str) -> nn.Module:
    """The ViT on meta, fully sharded, materialized seeded under VIT_CFG and then a
    Pretrained rule for some of its tensors, from a ``fmt`` file."""
    model, _ = fully_sharded("vit")
    cfg = [*VIT_CFG, pretrained_rule("vit", fmt, own_folder())]
    ins.materialize(model, "cpu", seed=SEED, plan=ins.compile_plan(model, cfg))
    return model


def case_pretrained_execute(fmt: str) -> nn.Module:
    """Mixed with Shard(1) DTensor parameters (NaN before), MIXED_CFG and then a Pretrained
    rule for some of them from a ``fmt`` file, executed seeded."""
    model = distributed_mixed("shard1")
    cfg = [*MIXED_CFG, pretrained_rule("mixed", fmt, own_folder())]
    ins.compile_plan(model, cfg).execute(seed=SEED)
    return model


def case_custom(layout: str) -> nn.Module:
    """Mixed under ``layout`` (NaN before), CUSTOM_CFG executed seeded: user initializers,
    one computed over the whole tensor, one drawn elementwise."""
    register_custom_initializers()
    model = distributed_mixed(layout)
    ins.compile_plan(model, CUSTOM_CFG).execute(seed=SEED)
    return model


def sharded_gated(gate: str, device: str) -> nn.Module:
    """``Gated(GATES[gate]())`` on ``device``, the gate and then the root under fully_shard;
    on the CPU every local part filled with 7."""
    from torch.distributed.fsdp import fully_shard

    with torch.device(device):
        model = Gated(GATES[gate]())
    fully_shard(model.gate, mesh=_mesh())
    fully_shard(model, mesh=_mesh())
    if device == "cpu":
        for tensor in model.state_dict().values():
            fill_local(tensor, 7.0)
    return model


def run_gated(model: nn.Module, cfg: Any, device: str) -> None:
    """Plan ``model`` (with ``cfg``, or its own init_weights) and run it seeded: materialize
    on meta, execute on the CPU."""
    plan = ins.compile_plan(model, cfg)
    if device == "meta":
        ins.materialize(model, "cpu", seed=SEED, plan=plan)
    else:
        plan.execute(seed=SEED)


def gated_cfg(gate: str) -> list[dict[str, Any]] | None:
    """The rules for ``Gated(GATES[gate]())``: GATED_CFG and a Call rule with
    ``shard_safe: true`` for a Gate, none (its own init_weights) for the others."""
    return [*GATED_CFG, {**GATE_CALL, "shard_safe": True}] if gate == "gate" else None


def case_gated(gate: str) -> nn.Module:
    """A shard-safe gate (``@ins.shard_safe`` init_weights, or a Call rule with
    ``shard_safe: true``), fully sharded on meta and materialized."""
    model = sharded_gated(gate, "meta")
    run_gated(model, gated_cfg(gate), "meta")
    return model


def case_refuse_user_init_weights(device: str) -> dict[str, Any]:
    """A user init_weights not declared shard-safe, holding a sharded parameter."""
    model = sharded_gated("user", device)
    return attempt(model, lambda: run_gated(model, None, device))


def case_refuse_call(device: str) -> dict[str, Any]:
    """A Call rule without shard_safe (reset_parameters of every Linear) on a sharded
    Linear, then one with it (the gate's): the refusal comes before either runs."""
    model = sharded_gated("gate", device)
    cfg = [*GATED_CFG, LINEAR_CALL, {**GATE_CALL, "shard_safe": True}]
    return attempt(model, lambda: run_gated(model, cfg, device))


def raised(error: BaseException) -> dict[str, Any]:
    return {
        "types": [t.__name__ for t in type(error).__mro__],
        "message": str(error),
        "traceback": "".join(traceback.format_exception(error)),
    }


def local_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    from torch.distributed.tensor import DTensor

    return {
        k: (v.to_local() if isinstance(v, DTensor) else v).detach().clone()
        for k, v in model.state_dict().items()
    }


def attempt(model: nn.Module, call: Callable[[], Any]) -> dict[str, Any]:
    """What ``call`` raised (None: nothing), and the tensors of ``model`` it changed on this
    rank (allocated, moved, or written) anyway."""
    before = local_tensors(model)
    try:
        call()
    except Exception as e:
        error: dict[str, Any] | None = raised(e)
    else:
        error = None
    after = local_tensors(model)
    changed = [
        k
        for k in before
        if k not in after
        or before[k].device != after[k].device
        or (not after[k].is_meta and not torch.equal(before[k], after[k]))
    ]
    return {"raised": error, "changed": changed}


def case_refuse_faithful_materialize(only: str) -> dict[str, Any]:
    """materialize(seed=None) of the ViT, fully sharded or with only ``only`` sharded."""
    import initschema as ins

    model, plan = fully_sharded("vit", only)
    return attempt(model, lambda: ins.materialize(model, "cpu", seed=None, plan=plan))


def case_refuse_faithful_execute(only: str) -> dict[str, Any]:
    """plan.execute() of Mixed, all DTensors or only ``only``'s parameters."""
    import initschema as ins

    model = distributed_mixed("weight_shard0_bias_replicate", fill=7.0, only=only)
    return attempt(model, lambda: ins.compile_plan(model, MIXED_CFG).execute())


def strided_parameter(like: torch.Tensor, mesh: Any) -> nn.Parameter:
    """``like`` as FSDP2 + TP lays it out on a 2-D mesh: ``[_StridedShard(0, sf=2), Shard(0)]``
    (sharded over the tensor-parallel dim first), the local block filled with 7."""
    from torch.distributed.tensor import DTensor, Shard
    from torch.distributed.tensor.placement_types import _StridedShard

    rows = like.shape[0] // 4
    local = torch.full((rows, *like.shape[1:]), 7.0, device=like.device)
    placements = (_StridedShard(0, split_factor=2), Shard(0))
    dt = DTensor.from_local(
        local, mesh, placements, run_check=False, shape=like.shape, stride=like.stride()
    )
    return nn.Parameter(dt)


def case_refuse_strided(device: str) -> dict[str, Any]:
    """The second Linear's weight _StridedShard-placed: refused whether the model is on
    CPU (plan.execute) or meta (materialize), before the first Linear is written."""
    import initschema as ins

    mesh = _mesh("2d")
    with torch.device(device):
        model = nn.Sequential(nn.Linear(6, 8), nn.Linear(8, 4))
    model[1].weight = strided_parameter(model[1].weight, mesh)

    def call() -> None:  # refusing in compile_plan is as good as in execute
        plan = ins.compile_plan(model, [dict(type="Normal", layer="Linear", std=0.02)])
        if device == "meta":
            ins.materialize(model, "cpu", seed=SEED, plan=plan)
        else:
            plan.execute(seed=SEED)

    return attempt(model, call)


def _memory_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


def case_memory() -> dict[str, Any]:
    """Peak resident memory growth of one rank while materializing its shard of a
    256 MiB Linear weight (peak reset through /proc/self/clear_refs first)."""
    from torch.distributed.fsdp import fully_shard

    import initschema as ins

    with torch.device("meta"):
        model = nn.Sequential(nn.Linear(8192, 8192))
    fully_shard(model, mesh=_mesh())
    plan = ins.compile_plan(model, MEMORY_CFG)
    Path("/proc/self/clear_refs").write_text("5")
    before = _memory_kib("VmRSS")
    ins.materialize(model, "cpu", seed=SEED, plan=plan)
    peak = _memory_kib("VmHWM")
    local = model[0].weight.to_local()
    return {
        "growth": (peak - before) * 1024,
        "local_bytes": local.numel() * local.element_size(),
        "local_device": str(local.device),
        "finite": bool(torch.isfinite(local).all()),
    }


def case_by_name(name: str) -> Callable[[], Any]:
    kind, _, arg = name.partition(":")
    cases: dict[str, Callable[[], Any]] = {
        "materialize": lambda: case_materialize(arg),
        "execute": lambda: case_execute(arg),
        "refuse_faithful_materialize": lambda: case_refuse_faithful_materialize(arg),
        "refuse_faithful_execute": lambda: case_refuse_faithful_execute(arg),
        "refuse_strided": lambda: case_refuse_strided(arg),
        "pretrained": lambda: case_pretrained(arg),
        "pretrained_execute": lambda: case_pretrained_execute(arg),
        "custom": lambda: case_custom(arg),
        "gated": lambda: case_gated(arg),
        "refuse_user_init_weights": lambda: case_refuse_user_init_weights(arg),
        "refuse_call": lambda: case_refuse_call(arg),
        "memory": case_memory,
    }
    return cases[kind]


def gathered(model: nn.Module) -> dict[str, torch.Tensor] | None:
    """Every parameter and buffer, whole, on rank 0 (None elsewhere); collective."""
    import torch.distributed as dist
    from torch.distributed.tensor import DTensor

    state = {
        k: (v.full_tensor() if isinstance(v, DTensor) else v).detach().clone()
        for k, v in model.state_dict().items()
    }
    return state if dist.get_rank() == 0 else None


def run_case(name: str) -> Any:
    import torch.distributed as dist

    try:
        got, error = case_by_name(name)(), None
    except Exception as e:
        got, error = None, raised(e)
    errors: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(errors, error)
    if any(errors):
        return {"errors": errors}
    if isinstance(got, nn.Module):
        return {"state": gathered(got)}
    return got


def rank_main(rank: int, world_size: int, port: int, outdir: str, cases: tuple[str, ...]) -> None:
    """One rank: its output into ``rank{r}.log``, every case, its results into ``rank{r}.pt``."""
    import torch.distributed as dist

    global OUTDIR
    OUTDIR = Path(outdir)
    with open(Path(outdir) / f"rank{rank}.log", "wb") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    os.environ["GLOO_SOCKET_IFNAME"] = loopback_interface()
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world_size,
        timeout=timedelta(seconds=60),
    )
    try:
        results = {}
        for name in cases:
            start = time.perf_counter()
            results[name] = run_case(name)
            print(f"{name}: {time.perf_counter() - start:.2f} s", flush=True)
        torch.save(results, Path(outdir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


# ---------------------------------------------------------------- launcher

# What every rank imports: the launcher imports it once and forks the ranks from itself,
# because four processes importing torch on two cores take longer than the cases.
PRELOAD = [
    "torch.distributed.fsdp",
    "torch.distributed.tensor",
    "torch._dynamo",
    "initschema.modules",
    "initschema.engine.execute",
]


def launcher_main(world_size: str, port: str, outdir: str, timeout: str, *cases: str) -> int:
    """Fork ``world_size`` ranks from this process (which has imported what they need and
    run no tensor operation yet), kill them all after ``timeout`` seconds."""
    import importlib

    for module in PRELOAD:
        importlib.import_module(module)
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    procs = [
        context.Process(target=rank_main, args=(rank, int(world_size), int(port), outdir, cases))
        for rank in range(int(world_size))
    ]
    for proc in procs:
        proc.start()
    deadline = time.monotonic() + float(timeout)
    for proc in procs:
        proc.join(max(0.0, deadline - time.monotonic()))
    for rank, proc in enumerate(procs):
        if proc.exitcode is None:
            print(f"rank {rank} still running after {timeout} s: killed", flush=True)
            proc.kill()
            proc.join()
    return 0 if all(proc.exitcode == 0 for proc in procs) else 1


# ---------------------------------------------------------------- parent side


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def loopback_interface() -> str:
    """The loopback's name (``lo``, ``lo0``): gloo otherwise binds the address the host
    name resolves to, which need not be the loopback."""
    return next(name for _, name in socket.if_nameindex() if name.startswith("lo"))


class LaunchError(RuntimeError):
    """The rank processes failed or ran out of time; carries each rank's log."""


def launch(
    world_size: int, cases: list[str], outdir: Path, timeout: float = 90.0
) -> dict[str, list[Any]]:
    """Run ``cases`` on ``world_size`` rank processes: ``{case: [result of rank r, ...]}``.

    The ranks are killed after ``timeout`` seconds (the launcher's whole process group
    a few seconds later); a port taken between :func:`free_port` and the store binding it
    is retried once."""
    for attempt in range(2):
        try:
            return _launch_once(world_size, cases, outdir, timeout)
        except LaunchError as e:
            if attempt or "address already in use" not in str(e).lower():
                raise
    raise AssertionError("unreachable")


def _launch_once(
    world_size: int, cases: list[str], outdir: Path, timeout: float
) -> dict[str, list[Any]]:
    outdir.mkdir(parents=True, exist_ok=True)
    for stale in outdir.glob("rank*"):
        stale.unlink()
    args = [str(world_size), str(free_port()), str(outdir), str(timeout), *cases]
    log = outdir / "launcher.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, __file__, *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: killed whole below
        )
    try:
        failed = proc.wait(timeout + 30) != 0
        what = "failed"
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        failed, what = True, "hung"
    if failed:
        logs = [log, *(outdir / f"rank{r}.log" for r in range(world_size))]
        text = "\n".join(f"--- {path.name} ---\n{_tail(path)}" for path in logs)
        raise LaunchError(f"{world_size} ranks running {cases} {what}:\n{text}")
    per_rank = [torch.load(outdir / f"rank{r}.pt", weights_only=False) for r in range(world_size)]
    return {case: [results[case] for results in per_rank] for case in cases}


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-4000:] if log.exists() else "(no log)"


if __name__ == "__main__":
    # Run by file path: the functions the ranks run, under their package's module name.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from initschema_testing import sharded_cases

    sys.exit(sharded_cases.launcher_main(*sys.argv[1:]))
