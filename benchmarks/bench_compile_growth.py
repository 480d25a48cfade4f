"""How compile time grows: with the number of tensors, and with the depth of nesting.

Two families of models, compiled (``compile_plan``, lints included, nothing written):

- flat: N/4 blocks of Linear + LayerNorm under one BaseModule, two rules at the root
  (1,000 … 50,000 tensors);
- deep: a chain of D nested BaseModules, each with a Linear and an override rule for it
  (depth 100 … 400; MMEngine itself makes O(depth) writes here).

    python benchmarks/bench_compile_growth.py [--repeats 3]

Prints milliseconds (median) and microseconds per tensor: flat columns mean linear.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
from torch import nn

import initschema as ins

sys.setrecursionlimit(20_000)  # for building the deep chain; compile needs no more


class Block(ins.BaseModule):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.norm = nn.LayerNorm(8)


class Flat(ins.BaseModule):
    def __init__(self, blocks: int) -> None:
        super().__init__(
            [
                dict(type="Normal", layer="Linear", std=0.02),
                dict(type="Constant", val=1, layer="LayerNorm"),
            ]
        )
        self.blocks = ins.ModuleList([Block() for _ in range(blocks)])


class Node(ins.BaseModule):
    def __init__(self, depth: int) -> None:
        super().__init__(dict(type="Normal", std=0.02, override=dict(name="fc")))
        self.fc = nn.Linear(4, 4)
        self.next = Node(depth - 1) if depth > 1 else None


def median_ms(model: nn.Module, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        ins.compile_plan(model, log=False)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"{'model':22} {'tensors':>8} {'compile ms':>11} {'µs/tensor':>10}")
    for tensors in (1_000, 5_000, 10_000, 25_000, 50_000):
        ms = median_ms(Flat(tensors // 4), args.repeats)
        print(f"{'flat':22} {tensors:>8} {ms:>11.1f} {ms * 1e3 / tensors:>10.2f}", flush=True)
    for depth in (100, 200, 300, 400):
        ms = median_ms(Node(depth), args.repeats)
        label = f"deep, depth {depth}"
        print(f"{label:22} {2 * depth:>8} {ms:>11.1f} {ms * 1e3 / (2 * depth):>10.2f}", flush=True)


if __name__ == "__main__":
    main()
