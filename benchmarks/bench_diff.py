"""How ``initschema diff`` grows with the number of parameters.

Two plans of one flat model (N/2 Linear layers, N parameters): one from a Normal rule,
one from a Pretrained rule loading every parameter from a checkpoint (one ``load`` action
covering the whole model). Their diff changes every parameter.

    python benchmarks/bench_diff.py [--repeats 3]

Prints milliseconds (median) of the diff alone, microseconds per parameter, and the ratio
of the largest model's time to the smallest's in this one process: with 16× the
parameters, a linear diff takes about 16× the time and a quadratic one about 256×.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

import initschema as ins
from initschema._cli.show import diff_rows

SIZES = (1_000, 4_000, 16_000)


def plans(parameters: int, folder: Path) -> list[ins.InitPlan]:
    model = nn.Sequential(*[nn.Linear(2, 2) for _ in range(parameters // 2)])
    checkpoint = folder / f"{parameters}.pth"
    torch.save(model.state_dict(), checkpoint)
    rules = [
        dict(type="Normal", layer="Linear", std=0.02),
        dict(type="Pretrained", checkpoint=str(checkpoint)),
    ]
    return [ins.compile_plan(model, rule, log=False) for rule in rules]


def median_ms(pair: list[ins.InitPlan], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        rows = diff_rows(pair)
        times.append(time.perf_counter() - start)
    assert len(rows) == len(pair[0].parameters)
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"{'parameters':>10} {'diff ms':>9} {'µs/parameter':>13}")
    measured = {}
    with tempfile.TemporaryDirectory() as folder:
        for parameters in SIZES:
            measured[parameters] = median_ms(plans(parameters, Path(folder)), args.repeats)
            ms = measured[parameters]
            print(f"{parameters:>10} {ms:>9.1f} {ms * 1e3 / parameters:>13.2f}", flush=True)
    growth = SIZES[-1] // SIZES[0]
    ratio = measured[SIZES[-1]] / measured[SIZES[0]]
    print(f"{growth}× the parameters: {ratio:.1f}× the time", end=" ")
    print(f"(linear {growth}×, quadratic {growth**2}×)")


if __name__ == "__main__":
    main()
