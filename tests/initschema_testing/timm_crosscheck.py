"""A one-off cross-check of the vit_timm and vit_timm_jax strategies against timm's own
init. Not a test: timm needs torchvision, whose PyPI wheels do not import beside the CPU
torch the suite runs on, so it runs in an environment of its own::

    python -m venv .venv-timm
    .venv-timm/bin/pip install torch torchvision timm "pydantic>=2.6" \\
        "hydra-core>=1.3.8,<1.4" "omegaconf>=2.2,<2.4" "rich>=13"
    PYTHONPATH=.:tests .venv-timm/bin/python tests/initschema_testing/timm_crosscheck.py

It builds timm's ``vit_small_patch16_224`` with timm's init (``weight_init=''`` and
``'jax'``) and the example ViT of the same architecture (384 wide, 12 blocks, 6 heads,
224×224 images in 16×16 patches, 1,000 classes) initialized by the example app's code path
(``train.build``, ``ins.materialize``) with vit_timm and vit_timm_jax, and prints per
parameter group (blocks pooled) each side's mean and std, the z-scores of their
differences and the two-sample KS distance over its critical value at a 10⁻⁸ level. It
exits 1 if a group differs: shapes, a constant group not equal, |z| > 6 or KS over the
critical value. The README's "Hydra" section gives the numbers of its last run.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import timm
import torch
from hydra import compose, initialize_config_dir

import initschema as ins
from initschema_testing.stats import ks_distance

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))
import train  # noqa: E402  (examples/train.py)

# timm's names → the example ViT's.
NAMES = [
    ("patch_embed.proj.", "backbone.patch_embed."),
    ("blocks.", "backbone.blocks."),
    ("norm.", "backbone.norm."),
    ("head.", "head.fc."),
]
SIZE = [
    "model.backbone.image_size=224",
    "model.backbone.patch_size=16",
    "model.backbone.dim=384",
    "model.backbone.depth=12",
    "model.backbone.heads=6",
    "model.head.num_classes=1000",
]


def renamed(name: str) -> str:
    if name in ("cls_token", "pos_embed"):
        return f"backbone.{name}"
    for old, new in NAMES:
        if name.startswith(old):
            return new + name[len(old) :]
    raise KeyError(name)


def group(name: str) -> str:
    return ".".join("N" if part.isdigit() else part for part in name.split("."))


def ours(strategy: str) -> dict[str, torch.Tensor]:
    overrides = ["model=vit", f"init_strategy@model.init_cfg={strategy}", *SIZE]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    torch.manual_seed(0)
    model, plan, on_meta = train.build(cfg)
    assert on_meta, "the strategy should set every tensor"
    ins.materialize(model, "cpu", plan=plan)
    return model.state_dict()


def theirs(weight_init: str) -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    model = timm.create_model("vit_small_patch16_224", pretrained=False, weight_init=weight_init)
    return {renamed(k): v for k, v in model.state_dict().items()}


def compare(strategy: str, weight_init: str) -> bool:
    a, b = theirs(weight_init), ours(strategy)
    print(
        f"\n{strategy} vs timm {timm.__version__} vit_small_patch16_224 weight_init={weight_init!r}"
    )
    if {k: v.shape for k, v in a.items()} != {k: v.shape for k, v in b.items()}:
        print("  the state dicts differ in names or shapes")
        return False
    ok = True
    print(
        f"  {'group':36} {'timm mean':>10} {'timm std':>10} {'ours mean':>10} {'ours std':>10}"
        f" {'z mean':>7} {'z std':>7} {'KS/crit':>7}"
    )
    for name in sorted({group(k) for k in a}):
        x = torch.cat([a[k].double().flatten() for k in a if group(k) == name])
        y = torch.cat([b[k].double().flatten() for k in b if group(k) == name])
        if float(x.std()) == 0.0 or float(y.std()) == 0.0:
            same = torch.equal(x, y)
            ok &= same
            print(f"  {name:36} constant {float(x[0]):g} {'==' if same else '!='} {float(y[0]):g}")
            continue
        n, m = x.numel(), y.numel()
        z_mean = float(x.mean() - y.mean()) / math.sqrt(x.var() / n + y.var() / m)
        z_std = float(x.std() - y.std()) / math.sqrt(x.var() / (2 * n) + y.var() / (2 * m))
        critical = math.sqrt(-math.log(1e-8 / 2) / 2) * math.sqrt((n + m) / (n * m))
        ks = ks_distance(x, y) / critical
        ok &= abs(z_mean) <= 6 and abs(z_std) <= 6 and ks <= 1
        print(
            f"  {name:36} {float(x.mean()):10.3g} {float(x.std()):10.4g} {float(y.mean()):10.3g}"
            f" {float(y.std()):10.4g} {z_mean:7.2f} {z_std:7.2f} {ks:7.3f}"
        )
    return ok


if __name__ == "__main__":
    print(f"torch {torch.__version__}, timm {timm.__version__}")
    results = [compare("vit_timm", ""), compare("vit_timm_jax", "jax")]
    print("\nall groups agree" if all(results) else "\nSOME GROUPS DIFFER")
    sys.exit(0 if all(results) else 1)
