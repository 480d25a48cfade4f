"""Strategies from config alone: each strategy of ``initschema/conf/init_strategy/`` that
reproduces a real project's init, composed and run through the example Hydra app's own
code path (``train.build``, then ``ins.materialize`` or ``plan.execute``), gives the example
model it is for the statistics of that project's code, per parameter group. The expected
values are facts read from the sources each strategy file cites (a std of 0.02, a bound of
√(6/(fan_in+fan_out)), …), not computed by initschema; means and stds are held to K
standard errors of the sample size, constants exactly. The app run as a user runs it
(``save=PATH``) writes ``pos_embed``, ``cls_token`` and depth-scaled residuals from YAML
alone; and MMPretrain 1.2.0's own ViT, where it is installed, is compared with the
vit_mmpretrain strategy on the same architecture.

timm is no test dependency: it needs torchvision, whose PyPI wheels do not import beside
the CPU torch the suite runs on. ``tests/initschema_testing/timm_crosscheck.py`` compares
vit_timm and vit_timm_jax with timm's own init in an environment of its own, a one-off
whose numbers the README's "Hydra" section gives.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

import initschema as ins
import initschema.hydra as ins_hydra
from initschema_testing.example_app import ROOT, compose_app, train
from initschema_testing.paths import TESTS
from initschema_testing.stats import ks_distance
from initschema_testing.subprocesses import run_python

K = 6.0
"""Standard errors allowed (as tests/kernels/test_modern.py): a false failure is a
one-in-10⁸ event per check."""

SQRT3 = math.sqrt(3.0)


def _trunc_std(c: float) -> float:
    """The std of N(0, 1) truncated to [-c, c]: √(1 - 2c·φ(c)/(2Φ(c) - 1))."""
    phi = math.exp(-c * c / 2) / math.sqrt(2 * math.pi)
    return math.sqrt(1 - 2 * c * phi / math.erf(c / math.sqrt(2)))


def _initialize(overrides: list[str]) -> tuple[torch.nn.Module, dict[str, Any], bool]:
    """Compose the app's config, validate it, build and initialize as ``examples/train.py``
    does; the model, its validated root rules by name, and whether it was built on meta."""
    cfg = compose_app(overrides)
    rules = {rule.name: rule.init for rule in ins_hydra.validate(cfg)["model.init_cfg"]}
    torch.manual_seed(0)
    model, plan, on_meta = train.build(cfg)
    if on_meta:
        ins.materialize(model, "cpu", plan=plan)
    else:
        plan.execute()
    return model, rules, on_meta


def _pool(state: dict[str, torch.Tensor], *patterns: str) -> torch.Tensor:
    """Every element of the tensors whose names match one of ``patterns`` (fnmatch)."""
    names = [k for k in state if any(fnmatch.fnmatchcase(k, p) for p in patterns)]
    assert names, f"nothing matches {patterns}"
    return torch.cat([state[k].detach().double().flatten() for k in names])


def assert_moments(values: torch.Tensor, std: float, kurtosis: float = 3.0) -> None:
    """Mean 0 and standard deviation ``std`` within K standard errors of ``values.numel()``
    draws: σ/√n for the mean, σ·√((κ-1)/(4n)) for the std of a law of kurtosis κ."""
    n = values.numel()
    mean, sample_std = float(values.mean()), float(values.std())
    assert abs(mean) <= K * std / math.sqrt(n), (mean, std, n)
    assert abs(sample_std - std) <= K * std * math.sqrt((kurtosis - 1) / (4 * n)), (
        sample_std,
        std,
        n,
    )


def assert_uniform(values: torch.Tensor, bound: float) -> None:
    """U(-bound, bound): within the bound, std bound/√3 (kurtosis 1.8)."""
    assert float(values.abs().max()) <= bound
    assert_moments(values, bound / SQRT3, kurtosis=1.8)


def assert_all(values: torch.Tensor, value: float) -> None:
    assert torch.equal(values, torch.full_like(values, value)), values.unique()[:5]


@pytest.fixture(scope="module")
def vit_timm() -> tuple[dict[str, torch.Tensor], dict[str, Any], bool]:
    model, rules, on_meta = _initialize(["experiment=vit_small"])
    return model.state_dict(), rules, on_meta


class TestVitTimm:
    """vit_timm, timm's init_weights_vit_timm, on experiment=vit_small (dim 96, 4 blocks,
    32×32 images in 8×8 patches)."""

    def test_composes_and_builds_on_meta(self, vit_timm: Any) -> None:
        """Its rules validate and set every tensor, so the app builds on the meta device."""
        _, rules, on_meta = vit_timm
        assert list(rules) == ["linears", "convs", "norms", "pos_embed", "cls_token"]
        assert on_meta

    def test_linears(self, vit_timm: Any) -> None:
        """Every Linear, the head included: trunc_normal_(std=.02) (bounds ±2, i.e. ±100σ:
        the std stays 0.02), biases zero."""
        state = vit_timm[0]
        assert_moments(_pool(state, "*qkv.weight", "*proj.weight", "*fc?.weight"), 0.02)
        assert_moments(_pool(state, "head.fc.weight"), 0.02)
        assert_all(_pool(state, "*qkv.bias", "*proj.bias", "*fc?.bias"), 0.0)

    def test_tokens(self, vit_timm: Any) -> None:
        """pos_embed trunc_normal_(std=.02); cls_token normal_(std=1e-6)."""
        state = vit_timm[0]
        assert_moments(state["backbone.pos_embed"].double().flatten(), 0.02)
        assert_moments(state["backbone.cls_token"].double().flatten(), 1e-6)

    def test_patch_embedding_and_norms(self, vit_timm: Any) -> None:
        """The patch Conv2d at PyTorch's default: weight and bias U(±1/√fan_in), fan_in
        3·8·8; LayerNorms 1/0."""
        state = vit_timm[0]
        bound = 1 / math.sqrt(3 * 8 * 8)
        assert_uniform(_pool(state, "backbone.patch_embed.weight"), bound)
        assert float(state["backbone.patch_embed.bias"].abs().max()) <= bound
        assert_all(_pool(state, "*norm*.weight"), 1.0)
        assert_all(_pool(state, "*norm*.bias"), 0.0)


@pytest.fixture(scope="module")
def vit_timm_jax() -> dict[str, torch.Tensor]:
    model, rules, on_meta = _initialize(["model=vit", "init_strategy@model.init_cfg=vit_timm_jax"])
    assert on_meta and list(rules) == [
        "linears",
        "mlp_biases",
        "patch",
        "norms",
        "pos_embed",
        "cls_token",
        "head",
    ]
    return model.state_dict()


class TestVitTimmJax:
    """vit_timm_jax, timm's init_weights_vit_jax, on model=vit (dim 64, 2 blocks)."""

    def test_linears(self, vit_timm_jax: dict[str, torch.Tensor]) -> None:
        """xavier_uniform_: U(±√(6/(fan_in+fan_out))) for each shape."""
        state = vit_timm_jax
        for pattern, fan_in, fan_out in [
            ("*qkv.weight", 64, 192),
            ("*attn.proj.weight", 64, 64),
            ("*fc1.weight", 64, 256),
            ("*fc2.weight", 256, 64),
        ]:
            assert_uniform(_pool(state, pattern), math.sqrt(6 / (fan_in + fan_out)))

    def test_biases(self, vit_timm_jax: dict[str, torch.Tensor]) -> None:
        """Biases of Linears whose name contains 'mlp': normal_(std=1e-6); the others zero."""
        state = vit_timm_jax
        mlp = _pool(state, "*mlp.fc?.bias")
        assert_moments(mlp, 1e-6)
        assert_all(_pool(state, "*qkv.bias", "*attn.proj.bias"), 0.0)

    def test_head_patch_tokens_norms(self, vit_timm_jax: dict[str, torch.Tensor]) -> None:
        """Head zero (head_bias 0); patch Conv2d lecun_normal_ (trunc_normal_tf_ at ±2,
        std √(1/fan_in) after truncation), zero bias; pos_embed 0.02, cls_token 1e-6."""
        state = vit_timm_jax
        assert_all(_pool(state, "head.*"), 0.0)
        std = math.sqrt(1 / (3 * 8 * 8))
        patch = _pool(state, "backbone.patch_embed.weight")
        assert float(patch.abs().max()) <= 2 * std / 0.87962566103423978
        assert_moments(patch, std)
        assert_all(_pool(state, "backbone.patch_embed.bias"), 0.0)
        assert_moments(state["backbone.pos_embed"].double().flatten(), 0.02)
        assert_moments(state["backbone.cls_token"].double().flatten(), 1e-6)
        assert_all(_pool(state, "*norm*.weight"), 1.0)
        assert_all(_pool(state, "*norm*.bias"), 0.0)


@pytest.fixture(scope="module")
def vit_mmpretrain() -> dict[str, torch.Tensor]:
    model, _, on_meta = _initialize(["model=vit", "init_strategy@model.init_cfg=vit_mmpretrain"])
    assert on_meta
    return model.state_dict()


class TestVitMmpretrain:
    """vit_mmpretrain, MMPretrain 1.2.0's ViT init, on model=vit (dim 64, 2 blocks)."""

    def test_patch_embedding(self, vit_mmpretrain: dict[str, torch.Tensor]) -> None:
        """Kaiming(mode='fan_in', nonlinearity='linear'): N(0, 1/fan_in), zero bias."""
        state = vit_mmpretrain
        assert_moments(_pool(state, "backbone.patch_embed.weight"), math.sqrt(1 / (3 * 8 * 8)))
        assert_all(_pool(state, "backbone.patch_embed.bias"), 0.0)

    def test_attention_keeps_pytorch_default(self, vit_mmpretrain: dict[str, torch.Tensor]) -> None:
        """qkv and proj weights and biases U(±1/√fan_in), fan_in 64."""
        state = vit_mmpretrain
        assert_uniform(_pool(state, "*qkv.weight", "*attn.proj.weight"), 1 / 8)
        assert float(_pool(state, "*qkv.bias", "*attn.proj.bias").abs().max()) <= 1 / 8

    def test_ffn(self, vit_mmpretrain: dict[str, torch.Tensor]) -> None:
        """xavier_uniform_ weights (fans 64 and 256), normal_(std=1e-6) biases."""
        state = vit_mmpretrain
        assert_uniform(_pool(state, "*fc1.weight", "*fc2.weight"), math.sqrt(6 / (64 + 256)))
        assert_moments(_pool(state, "*mlp.fc?.bias"), 1e-6)

    def test_tokens_head_norms(self, vit_mmpretrain: dict[str, torch.Tensor]) -> None:
        """pos_embed trunc_normal_(std=0.02); cls_token zeros; head Constant 0; LN 1/0."""
        state = vit_mmpretrain
        assert_moments(state["backbone.pos_embed"].double().flatten(), 0.02)
        assert_all(_pool(state, "backbone.cls_token", "head.*", "*norm*.bias"), 0.0)
        assert_all(_pool(state, "*norm*.weight"), 1.0)


@pytest.fixture(scope="module")
def gpt2() -> tuple[torch.nn.Module, dict[str, Any]]:
    model, rules, on_meta = _initialize(["model=gpt"])
    assert on_meta
    return model, rules


class TestGpt2:
    """gpt2, Hugging Face's GPT2PreTrainedModel._init_weights, on model=gpt (dim 64,
    n_layer 4, lm_head tied to wte)."""

    def test_n_layer_from_the_model_config(self, gpt2: Any) -> None:
        """The residual rule reads n_layer from the model's config node."""
        assert gpt2[1]["residual"].n_layers == 4

    def test_weights(self, gpt2: Any) -> None:
        """Linear and Embedding weights normal_(std=0.02); c_proj weights
        std 0.02/√(2·n_layer); the tied lm_head still is wte."""
        model, _ = gpt2
        state = model.state_dict()
        assert_moments(_pool(state, "*c_attn.weight", "*c_fc.weight"), 0.02)
        assert_moments(_pool(state, "wte.weight", "wpe.weight"), 0.02)
        assert_moments(_pool(state, "*c_proj.weight"), 0.02 / math.sqrt(2 * 4))
        assert model.lm_head.weight is model.wte.weight

    def test_biases_and_norms(self, gpt2: Any) -> None:
        """Linear biases zero; LayerNorms 1/0."""
        state = gpt2[0].state_dict()
        assert_all(_pool(state, "*c_*.bias", "*ln_*.bias"), 0.0)
        assert_all(_pool(state, "*ln_*.weight"), 1.0)


def _rope_cache(head_dim: int, positions: int) -> torch.Tensor:
    """cos and sin of position·10000^(-2k/head_dim), RoPE's angles (torchtitan's
    precompute_freqs_cis with theta 10000)."""
    frequencies = [10000.0 ** (-2 * k / head_dim) for k in range(head_dim // 2)]
    angles = torch.tensor([[p * f for f in frequencies] for p in range(positions)])
    return torch.stack([angles.cos(), angles.sin()], dim=-1)


@pytest.fixture(scope="module")
def llama_torchtitan() -> tuple[torch.nn.Module, bool]:
    model, _, on_meta = _initialize(["experiment=llama_torchtitan"])
    return model, on_meta


class TestLlamaTorchtitan:
    """llama_torchtitan (depth init), on experiment=llama_torchtitan (dim 64, 4 layers)."""

    def test_depth_scaled_residuals(self, llama_torchtitan: Any) -> None:
        """wo, w2, w3 of layer i: trunc_normal_(std=0.02/√(2·(i+1))); wq, wk, wv, w1: 0.02."""
        state = llama_torchtitan[0].state_dict()
        for i in range(4):
            residual = _pool(state, f"layers.{i}.attention.wo.weight", f"layers.{i}.*.w[23].weight")
            assert_moments(residual, 0.02 / math.sqrt(2 * (i + 1)))
        assert_moments(_pool(state, "*.w[qkv].weight", "*.w1.weight"), 0.02)

    def test_embedding_output_norms(self, llama_torchtitan: Any) -> None:
        """tok_embeddings normal_ (std 1); output trunc_normal_(std=dim**-0.5) cut at ±3σ
        (its std √(1-6φ(3)/(2Φ(3)-1)) times that); RMSNorm weights 1."""
        state = llama_torchtitan[0].state_dict()
        assert_moments(_pool(state, "tok_embeddings.weight"), 1.0)
        output = _pool(state, "output.weight")
        assert float(output.abs().max()) <= 3 * 64**-0.5
        assert_moments(output, 64**-0.5 * _trunc_std(3.0))
        assert_all(_pool(state, "*norm.weight"), 1.0)

    def test_rope_cache_recomputed_on_meta(self, llama_torchtitan: Any) -> None:
        """Built on the meta device; the Call rule recomputed the RoPE cache."""
        model, on_meta = llama_torchtitan
        assert on_meta
        torch.testing.assert_close(model.rope.cache, _rope_cache(16, 64))


class TestOlmo2:
    """olmo2 on model=llama (its default): OLMo 2's init_fn normal, init_std 0.02,
    init_cutoff_factor 3."""

    def test_everything_trunc_normal_at_3_sigma(self) -> None:
        """Every Linear and the embedding trunc_normal_(std=0.02, a=-0.06, b=0.06), no
        depth scaling; RMSNorm weights 1."""
        model, rules, _ = _initialize(["model=llama"])
        assert list(rules) == ["linears", "embeddings", "norms"]
        state = model.state_dict()
        weights = _pool(state, "*.w?.weight", "output.weight", "tok_embeddings.weight")
        assert float(weights.abs().max()) <= 0.06
        assert_moments(weights, 0.02 * _trunc_std(3.0))
        for i in range(4):  # no depth scaling
            assert_moments(_pool(state, f"layers.{i}.attention.wo.weight"), 0.02 * _trunc_std(3.0))
        assert_all(_pool(state, "*norm.weight"), 1.0)


class TestFlaxDefault:
    """flax_default: Flax's Dense/Conv kernel init lecun_normal, zero biases, LayerNorm 1/0,
    Embed variance_scaling(1, fan_in, normal)."""

    def test_vit(self) -> None:
        """Every Linear and the Conv2d: std √(1/fan_in) after truncation at ±2 of the
        pre-truncation std; zero biases; LayerNorm 1/0."""
        model, _, _ = _initialize(["model=vit", "init_strategy@model.init_cfg=flax_default"])
        state = model.state_dict()
        for pattern, fan_in in [
            ("*qkv.weight", 64),
            ("*proj.weight", 64),
            ("*fc1.weight", 64),
            ("*fc2.weight", 256),
            ("head.fc.weight", 64),
            ("backbone.patch_embed.weight", 3 * 8 * 8),
        ]:
            values = _pool(state, pattern)
            std = math.sqrt(1 / fan_in)
            assert float(values.abs().max()) <= 2 * std / 0.87962566103423978
            assert_moments(values, std)
        assert_all(_pool(state, "*.bias"), 0.0)
        assert_all(_pool(state, "*norm*.weight"), 1.0)

    def test_embedding(self) -> None:
        """nn.Embed's default: N(0, 1/dim) (fan_in of [vocab, dim] with out_axis=0 is dim),
        not truncated: of 32,768 draws some lie past a truncated normal's 2/0.8796 σ."""
        model, _, _ = _initialize(["model=llama", "init_strategy@model.init_cfg=flax_default"])
        values = _pool(model.state_dict(), "tok_embeddings.weight")
        assert_moments(values, 64**-0.5)
        assert float(values.abs().max()) > 2 * 64**-0.5 / 0.87962566103423978


class TestFromTheApp:
    def test_tokens_and_depth_scaled_residuals_from_yaml(self, tmp_path: Path) -> None:
        """examples/train.py run as a user runs it, with save=PATH: experiment=vit_small
        writes pos_embed (std 0.02) and cls_token (std 1e-6), experiment=llama_torchtitan
        each layer's wo, w2, w3 at 0.02/√(2·(layer_id+1)), from YAML alone."""
        runs = {
            name: subprocess.Popen(
                [
                    sys.executable,
                    str(ROOT / "examples" / "train.py"),
                    f"experiment={name}",
                    f"save={tmp_path / name}.pt",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=tmp_path,
            )
            for name in ("vit_small", "llama_torchtitan")
        }
        for name, process in runs.items():
            out, err = process.communicate(timeout=300)
            assert process.returncode == 0, err
            assert "on the meta device, then materialized" in out, name
        vit = torch.load(tmp_path / "vit_small.pt", weights_only=True)
        assert_moments(vit["backbone.pos_embed"].double().flatten(), 0.02)
        assert_moments(vit["backbone.cls_token"].double().flatten(), 1e-6)
        llama = torch.load(tmp_path / "llama_torchtitan.pt", weights_only=True)
        for i in range(4):
            for name in ("attention.wo", "feed_forward.w2", "feed_forward.w3"):
                values = llama[f"layers.{i}.{name}.weight"].double().flatten()
                assert_moments(values, 0.02 / math.sqrt(2 * (i + 1)))


MMPRETRAIN_VIT = """
import logging, sys
import torch
sys.path.insert(0, {tests!r})
from initschema_testing import openmmlab_harness as harness

harness._install_stubs()
for name in harness.PACKAGES:
    harness._register_bare_package(name)
from mmpretrain.models.backbones.vision_transformer import VisionTransformer
from mmpretrain.models.heads.vision_transformer_head import VisionTransformerClsHead

logging.getLogger("mmengine").setLevel(logging.ERROR)
torch.manual_seed(1)
arch = dict(embed_dims=192, num_layers=4, num_heads=3, feedforward_channels=768)
# init_cfg as configs/_base_/models/vit-base-p16.py gives the backbone.
kaiming = dict(type="Kaiming", layer="Conv2d", mode="fan_in", nonlinearity="linear")
backbone = VisionTransformer(arch=arch, img_size=64, patch_size=16, init_cfg=[kaiming])
head = VisionTransformerClsHead(num_classes=10, in_channels=192)
backbone.init_weights()
head.init_weights()
state = {{f"backbone.{{k}}": v for k, v in backbone.state_dict().items()}}
state.update({{f"head.{{k}}": v for k, v in head.state_dict().items()}})
torch.save(state, sys.argv[1])
"""

# MMPretrain's names → the example ViT's (timm's), for the same architecture.
MMPRETRAIN_NAMES = [
    ("backbone.ln1.", "backbone.norm."),  # the final norm, before the blocks' ln1 below
    ("backbone.patch_embed.projection.", "backbone.patch_embed."),
    ("backbone.layers.", "backbone.blocks."),
    (".ln1.", ".norm1."),
    (".ln2.", ".norm2."),
    (".ffn.layers.0.0.", ".mlp.fc1."),
    (".ffn.layers.1.", ".mlp.fc2."),
    ("head.layers.head.", "head.fc."),
]


def _renamed(name: str) -> str:
    for old, new in MMPRETRAIN_NAMES:
        name = name.replace(old, new)
    return name


def _group(name: str) -> str:
    """The parameter group: the name without its block index."""
    return ".".join("N" if part.isdigit() else part for part in name.split("."))


@pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ("mmcv", "mmpretrain", "mmdet")),
    reason="mmpretrain not installed; see tests/requirements-openmmlab.txt",
)
class TestAgainstMmpretrain:
    def test_vit_init_matches_mmpretrain_per_group(self, tmp_path: Path) -> None:
        """MMPretrain 1.2.0's VisionTransformer + VisionTransformerClsHead with their own
        init (MMEngine's, in a subprocess) against the example ViT of the same architecture
        (192 wide, 4 blocks, 64×64 images in 16×16 patches) under vit_mmpretrain: the same
        shapes, constants equal, and per group (blocks pooled) means and stds within K
        standard errors of their difference and the two samples' KS distance below the
        critical value of a 10⁻⁸ level."""
        script = MMPRETRAIN_VIT.format(tests=str(TESTS))
        result = run_python("-c", script, str(tmp_path / "mmpretrain.pt"), timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        theirs = {_renamed(k): v for k, v in torch.load(tmp_path / "mmpretrain.pt").items()}
        model, _, _ = _initialize(
            [
                "model=vit",
                "init_strategy@model.init_cfg=vit_mmpretrain",
                "model.backbone.image_size=64",
                "model.backbone.patch_size=16",
                "model.backbone.dim=192",
                "model.backbone.depth=4",
                "model.backbone.heads=3",
            ]
        )
        ours = model.state_dict()
        assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}
        for group in sorted({_group(k) for k in ours}):
            a = _pool(theirs, *[k for k in theirs if _group(k) == group])
            b = _pool(ours, *[k for k in ours if _group(k) == group])
            if float(a.std()) == 0.0:
                assert torch.equal(a, b), group
                continue
            se_mean = math.sqrt(a.var() / a.numel() + b.var() / b.numel())
            assert abs(float(a.mean() - b.mean())) <= K * se_mean, group
            # The std of a sample of n from a law of kurtosis ≤ 3 has SE ≤ σ/√(2n).
            se_std = math.sqrt(a.var() / (2 * a.numel()) + b.var() / (2 * b.numel()))
            assert abs(float(a.std() - b.std())) <= K * se_std, group
            # The same law, not only the same moments (xavier_uniform_ vs a normal of its
            # std): KS at a level of 10⁻⁸, c = √(-ln(10⁻⁸/2)/2).
            n, m = a.numel(), b.numel()
            critical = math.sqrt(-math.log(1e-8 / 2) / 2) * math.sqrt((n + m) / (n * m))
            assert ks_distance(a, b) <= critical, group
