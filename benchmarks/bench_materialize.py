"""materialize() of sharded models: per-rank CPU time by world size, and peak memory.

``ins.materialize(model, "cpu", seed=1234, plan=plan)`` allocates a model built on the
meta device and draws its seeded values; under FSDP2's ``fully_shard`` each rank draws
only the tiles its shard falls in, so its work should shrink with the world size.

1. Time. A GPT-shaped model (token embedding 32000 × 1024, 20 blocks of qkv, proj, fc1,
   fc2 Linear and two LayerNorms, final LayerNorm: 285M float32 elements, 1.14 GB;
   TruncNormal Linears, Normal embedding, Constant LayerNorms) is built on meta,
   ``fully_shard``-ed (each block, then the root) on a 1-D CPU mesh of 1, 2 and 4 gloo
   ranks, and materialized. Each rank has one torch thread and reports the CPU time
   (``time.process_time``: user + system, page faults of the new memory included) of
   its ``materialize`` call; the per-rank number is the max over ranks, and the ratios
   are against one rank. CPU time rather than wall time, because the machine this was
   written on has 2 cores: 4 ranks share them, and their wall time measures the
   sharing, not the work. Wall times are printed for context. For context too, one
   process without a process group materializes the plain meta model, and another runs
   a hand loop: ``torch.empty`` of each tensor, then one kernel per tensor
   (``trunc_normal_``, ``normal_``, ``fill_``, ``zero_``) from its own generator. The
   five runs are repeated in interleaved rounds (other load on the machine then falls
   on all of them alike); each ratio is taken within a round; median (min–max).

2. Memory. A 1-D mesh of 4 ranks materializes one 256 MiB float32 weight
   (``nn.Linear(8192, 8192, bias=False)``, TruncNormal), sharded by ``fully_shard``
   (``Shard(0)``: a contiguous quarter of the flattened tensor) and, by hand, as a
   ``Shard(1)`` DTensor (each row cut in four: every tile holds some of each rank's
   elements, so each rank draws the whole tensor, a tile at a time). Each rank reports
   the growth of its peak RSS (``ru_maxrss``) across the call as a fraction of the full
   tensor; one shard plus a tile is 0.25. Peak RSS is a high-water mark, so each layout
   runs in fresh processes whose peak before the call is their RSS after building the
   meta model. ``slack`` is that peak minus the RSS then (growth below it would not
   show; slightly negative, as the kernel counts RSS in batches of pages); ``hwm``
   cross-checks with Linux's resettable peak (``/proc/self/clear_refs``).

Every measurement runs in fresh processes (``torch.multiprocessing`` spawn, gloo on
127.0.0.1 at a free port), each launch killed after ``--timeout`` seconds. Nothing is
asserted; the targets (ws2/ws1 ≤ 0.6, ws4/ws1 ≤ 0.35) are printed beside the ratios.
``--quick`` runs small models once, as a smoke test (fixed costs dominate its ratios).

    python benchmarks/bench_materialize.py [--quick] [--repeats 3] [--timeout 240]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import socket
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.distributed.tensor import DTensor
from torch.multiprocessing.spawn import ProcessContext, start_processes

import initschema as ins
from initschema.sharding.streams import seed_for

SEED = 1234
CFG = [
    dict(type="TruncNormal", layer="Linear", std=0.02),
    dict(type="Normal", layer="Embedding", std=0.02),
    dict(type="Constant", layer="LayerNorm", val=1),
]
MEMORY_CFG = [dict(type="TruncNormal", layer="Linear", std=0.02)]
TARGETS = {2: 0.6, 4: 0.35}
SIZES = {  # (vocab, dim, depth) of the GPT, width of the memory Linear
    "full": ((32000, 1024, 20), 8192),
    "quick": ((1000, 128, 2), 1024),
}


# ---------------------------------------------------------------- models
class Block(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)


class GPT(nn.Module):
    def __init__(self, vocab: int, dim: int, depth: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.blocks = nn.ModuleList(Block(dim) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)


def hand_loop(model: nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """What materialize does for the plain model, written out: a new tensor per parameter
    and one kernel from its own generator."""
    out: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for prefix, module in model.named_modules():
            for name, param in module.named_parameters(recurse=False):
                path = f"{prefix}.{name}" if prefix else name
                tensor = torch.empty(param.shape)
                generator = torch.Generator()
                generator.manual_seed(seed_for(seed, path))
                if name == "bias":
                    tensor.zero_()
                elif isinstance(module, nn.Linear):
                    nn.init.trunc_normal_(tensor, std=0.02, generator=generator)
                elif isinstance(module, nn.Embedding):
                    tensor.normal_(0.0, 0.02, generator=generator)
                else:
                    tensor.fill_(1.0)
                out[path] = tensor
    return out


# ---------------------------------------------------------------- rank side
def status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def local_numel(model: nn.Module) -> int:
    return sum((p.to_local() if isinstance(p, DTensor) else p).numel() for p in model.parameters())


def task_time(size: str, mode: str) -> dict[str, Any]:
    """Materialize the GPT (``fsdp``: fully_shard-ed on the group's mesh; ``plain``: no
    process group), or run the hand loop on its shapes; CPU and wall time of that."""
    (vocab, dim, depth), _ = SIZES[size]
    with torch.device("meta"):
        model = GPT(vocab, dim, depth)
    if mode == "fsdp":
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        mesh = init_device_mesh("cpu", (torch.distributed.get_world_size(),))
        for block in model.blocks:
            fully_shard(block, mesh=mesh)
        fully_shard(model, mesh=mesh)
    plan = ins.compile_plan(model, CFG, log=False)
    gc.collect()
    cpu, wall = time.process_time(), time.perf_counter()
    if mode == "hand":
        numel = sum(t.numel() for t in hand_loop(model, SEED).values())
    else:
        ins.materialize(model, "cpu", seed=SEED, plan=plan)
        numel = local_numel(model)
    return {"cpu": time.process_time() - cpu, "wall": time.perf_counter() - wall, "numel": numel}


def task_memory(size: str, placement: str) -> dict[str, Any]:
    """Peak RSS growth of materializing this rank's part of one Linear weight, sharded as
    ``placement`` (``shard0``: fully_shard; ``shard1``: a hand-made Shard(1) DTensor)."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor import Shard

    _, width = SIZES[size]
    mesh = init_device_mesh("cpu", (torch.distributed.get_world_size(),))
    with torch.device("meta"):
        linear = nn.Linear(width, width, bias=False)
        model = nn.Sequential(linear)
    if placement == "shard0":
        fully_shard(model, mesh=mesh)
    else:
        weight = linear.weight
        columns = width // mesh.size()
        local = torch.empty(width, columns, device="meta")
        linear.weight = nn.Parameter(
            DTensor.from_local(
                local, mesh, [Shard(1)], run_check=False, shape=weight.shape, stride=weight.stride()
            )
        )
    plan = ins.compile_plan(model, MEMORY_CFG, log=False)
    gc.collect()
    rss = status_kib("VmRSS")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
        resettable = True
    except OSError:
        resettable = False
    cpu = time.process_time()
    ins.materialize(model, "cpu", seed=SEED, plan=plan)
    cpu = time.process_time() - cpu
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    hwm = status_kib("VmHWM")
    assert isinstance(linear.weight, DTensor)
    local_weight = linear.weight.to_local()
    return {
        "growth": (after - peak) * 1024,
        "slack": (peak - rss) * 1024 if rss is not None else None,
        "hwm": (hwm - rss) * 1024 if resettable and hwm is not None and rss is not None else None,
        "full": width * width * 4,
        "local": local_weight.numel() * local_weight.element_size(),
        "finite": bool(torch.isfinite(local_weight).all()),
        "cpu": cpu,
    }


def rank_main(
    rank: int, world_size: int, port: int, task: str, args: tuple[Any, ...], outdir: str
) -> None:
    torch.set_num_threads(1)
    grouped = task != "plain"
    if grouped:
        # gloo otherwise binds the address the host name resolves to.
        os.environ.setdefault("GLOO_SOCKET_IFNAME", loopback_interface())
        torch.distributed.init_process_group(
            "gloo",
            init_method=f"tcp://127.0.0.1:{port}",
            rank=rank,
            world_size=world_size,
            timeout=timedelta(seconds=120),
        )
    try:
        result = task_memory(*args) if task == "memory" else task_time(*args)
        Path(outdir, f"rank{rank}.json").write_text(json.dumps(result))
    finally:
        if grouped:
            torch.distributed.destroy_process_group()


# ---------------------------------------------------------------- launcher
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def loopback_interface() -> str:
    return next((name for _, name in socket.if_nameindex() if name.startswith("lo")), "lo")


def launch(
    world_size: int, task: str, args: tuple[Any, ...], timeout: float
) -> list[dict[str, Any]]:
    """Run ``task`` on ``world_size`` fresh spawned ranks; every rank's result. Kills them
    all and raises after ``timeout`` seconds."""
    with tempfile.TemporaryDirectory() as outdir:
        context: ProcessContext = start_processes(  # type: ignore[no-untyped-call]
            rank_main,
            args=(world_size, free_port(), task, args, outdir),
            nprocs=world_size,
            join=False,
            start_method="spawn",
        )
        deadline = time.monotonic() + timeout
        try:
            while not context.join(timeout=1.0):
                if time.monotonic() > deadline:
                    raise SystemExit(f"{task}{args} at world size {world_size}: over {timeout} s")
        finally:
            for process in context.processes:
                if process.is_alive():
                    process.kill()
                    process.join()
        return [json.loads(Path(outdir, f"rank{r}.json").read_text()) for r in range(world_size)]


# ---------------------------------------------------------------- report
def millions(n: float) -> str:
    return f"{n / 1e6:.1f}M"


def spread(values: list[float], digits: int = 2) -> str:
    """Median (min–max)."""
    median, low, high = statistics.median(values), min(values), max(values)
    return f"{median:.{digits}f} ({low:.{digits}f}–{high:.{digits}f})"


def bench_time(size: str, timeout: float, repeats: int) -> None:
    (vocab, dim, depth), _ = SIZES[size]
    with torch.device("meta"):
        numel = sum(p.numel() for p in GPT(vocab, dim, depth).parameters())
    print(
        f"\n1. materialize(model, 'cpu', seed={SEED}): GPT {vocab}×{dim}, {depth} blocks, "
        f"{millions(numel)} float32 elements ({numel * 4 / 1e9:.2f} GB); 1 torch thread per "
        f"rank; CPU s = max over ranks of time.process_time(); {repeats} interleaved rounds, "
        f"median (min–max), ratios within a round"
    )
    runs = [(f"fully_shard, ws={n}", n, "fsdp") for n in (1, 2, 4)]
    runs += [("plain meta model, no group", 1, "plain"), ("hand loop", 1, "hand")]
    rounds: list[dict[str, dict[str, float]]] = []
    for _ in range(repeats):
        row = {}
        for label, world_size, mode in runs:
            task = "time" if mode == "fsdp" else "plain"
            ranks = launch(world_size, task, (size, mode), timeout)
            row[label] = {key: max(r[key] for r in ranks) for key in ("cpu", "wall", "numel")}
        rounds.append(row)

    def ratios(label: str, base: str = "fully_shard, ws=1") -> list[float]:
        return [row[label]["cpu"] / row[base]["cpu"] for row in rounds]

    print(
        f"{'run':28} {'ranks':>5} {'elem/rank':>9} {'CPU s/rank':>17} {'wall s':>17} "
        f"{'CPU vs ws1':>17}"
    )
    for label, world_size, _ in runs:
        cpu = [row[label]["cpu"] for row in rounds]
        wall = [row[label]["wall"] for row in rounds]
        print(
            f"{label:28} {world_size:>5} {millions(rounds[0][label]['numel']):>9} "
            f"{spread(cpu):>17} {spread(wall):>17} {spread(ratios(label)):>17}"
        )
    for n, target in TARGETS.items():
        values = ratios(f"fully_shard, ws={n}")
        verdict = "meets" if statistics.median(values) <= target else "MISSES"
        if size == "quick":
            verdict = "not judged on the quick model"
        print(f"ws{n}/ws1 CPU time per rank: {spread(values, 3)} (target ≤ {target}: {verdict})")
    hand = ratios("plain meta model, no group", "hand loop")
    print(f"plain materialize / hand loop: {spread(hand, 3)}")


def bench_memory(size: str, timeout: float, world_size: int = 4) -> None:
    _, width = SIZES[size]
    print(
        f"\n2. peak RSS growth during materialize: Linear({width}, {width}, bias=False) "
        f"weight ({width * width * 4 / 2**20:.0f} MiB), TruncNormal, mesh of {world_size}; "
        f"fractions of the full tensor"
    )
    print(
        f"{'placement':24} {'rank':>4} {'shard':>6} {'growth':>7} {'slack':>6} {'hwm':>6} "
        f"{'CPU s':>6} {'finite':>6}"
    )
    for label, placement in (("Shard(0), fully_shard", "shard0"), ("Shard(1), by hand", "shard1")):
        for rank, r in enumerate(launch(world_size, "memory", (size, placement), timeout)):
            full = r["full"]

            def frac(value: int | None, full: int = full) -> str:
                return "-" if value is None else f"{value / full:.3f}"

            print(
                f"{label:24} {rank:>4} {frac(r['local']):>6} {frac(r['growth']):>7} "
                f"{frac(r['slack']):>6} {frac(r['hwm']):>6} {r['cpu']:>6.2f} "
                f"{r['finite']!s:>6}",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small models, a smoke test")
    parser.add_argument("--repeats", type=int, help="rounds of the timings (3; --quick: 1)")
    parser.add_argument("--timeout", type=float, default=240, help="seconds per launch")
    args = parser.parse_args()
    size = "quick" if args.quick else "full"
    repeats = args.repeats or (1 if args.quick else 3)
    start = time.perf_counter()
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, fresh processes per measurement")
    bench_time(size, args.timeout, repeats)
    bench_memory(size, args.timeout)
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
