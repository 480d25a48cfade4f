"""Peak memory and time of loading a ~1 GB checkpoint: PretrainedInit vs torch.load.

The parent process saves a model of ~1 GB of float32 weights (16 Linear(4096, 4096)
layers) as safetensors and as a torch file, then runs each method in a fresh
process. A child builds the model (every page touched), then measures the peak
of ``RssAnon`` in ``/proc/self/status``, sampled from a thread, above that
baseline while it loads: file-backed pages of a memory map are no copy,
anonymous memory is. Ratios are extra anonymous memory / model size.

    python benchmarks/bench_pretrained_memory.py [--layers 16] [--width 4096]

Methods: ``initschema-*`` loads through a Pretrained rule (headers at compile time,
then entry by entry); ``torch-*`` is ``torch.load`` / ``safetensors.torch.load_file``
+ ``load_state_dict``; ``initschema-meta-*`` builds the model on the meta device
and lets the rule materialize it (its ratio is all anonymous memory the load adds,
the model included, since there is no built model to subtract).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import torch
from torch import nn

METHODS = [
    "torch-pth",
    "initschema-pth",
    "torch-safetensors",
    "initschema-safetensors",
    "initschema-meta-pth",
    "initschema-meta-safetensors",
]


def build(layers: int, width: int, meta: bool = False) -> nn.Module:
    with torch.device("meta"):
        model = nn.Sequential(*[nn.Linear(width, width) for _ in range(layers)])
    if not meta:
        model.to_empty(device="cpu")
        with torch.no_grad():
            for p in model.parameters():
                p.zero_()  # touch every page, so the baseline holds the whole model
    return model


def rss_anon() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no RssAnon in /proc/self/status")


class PeakSampler:
    def __init__(self) -> None:
        self.peak = rss_anon()
        self.running = True
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while self.running:
            self.peak = max(self.peak, rss_anon())
            time.sleep(0.002)

    def __enter__(self) -> PeakSampler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.running = False
        self.thread.join()
        self.peak = max(self.peak, rss_anon())


def child(method: str, folder: str, layers: int, width: int) -> dict[str, Any]:
    import safetensors.torch

    import initschema as ins

    suffix = "safetensors" if method.endswith("safetensors") else "pth"
    path = os.path.join(folder, f"model.{suffix}")
    model = build(layers, width, meta="-meta-" in method)
    model_bytes = layers * (width * width + width) * 4
    baseline = rss_anon()
    start = time.perf_counter()
    with PeakSampler() as sampler:
        if method.startswith("initschema"):
            ins.initialize(model, dict(type="Pretrained", checkpoint=path))
        elif suffix == "pth":
            model.load_state_dict(torch.load(path, weights_only=True))
        else:
            model.load_state_dict(safetensors.torch.load_file(path))
    seconds = time.perf_counter() - start
    check = model[0].weight[0, :4].tolist()
    return {"extra": (sampler.peak - baseline) / model_bytes, "seconds": seconds, "check": check}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, default=16)
    parser.add_argument("--width", type=int, default=4096)
    parser.add_argument("--child", choices=METHODS)
    parser.add_argument("--dir")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.dir, args.layers, args.width)))
        return

    import safetensors.torch

    with tempfile.TemporaryDirectory() as folder:
        torch.manual_seed(0)
        model = build(args.layers, args.width)
        with torch.no_grad():
            for p in model.parameters():
                p.normal_()
        state = model.state_dict()
        torch.save(state, os.path.join(folder, "model.pth"))
        safetensors.torch.save_file(state, os.path.join(folder, "model.safetensors"))
        expected = model[0].weight[0, :4].tolist()
        size = sum(t.nelement() * t.element_size() for t in state.values())
        del model, state
        print(f"model: {size / 2**30:.2f} GiB of float32 weights, torch {torch.__version__}")
        print(f"{'method':30} {'extra RssAnon / model':>22} {'seconds':>8}")
        for method in METHODS:
            out = subprocess.run(
                [sys.executable, __file__, "--child", method, "--dir", folder,
                 "--layers", str(args.layers), "--width", str(args.width)],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            result = json.loads(out.stdout.strip().splitlines()[-1])
            if result["check"] != expected:
                raise SystemExit(f"{method}: loaded values differ from the saved ones")
            print(f"{method:30} {result['extra']:22.3f} {result['seconds']:8.2f}")


if __name__ == "__main__":
    main()
