"""Models built on the meta device: materialize, params_on_meta, the Call rule, and what
seeded values are keyed by (canonical paths, tied tensors, dtype, a pinned digest)."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

import initschema as ins
from initschema.sharding.placement import canonical_path
from initschema.sharding.streams import STREAM, TILE
from initschema_testing import zoo

KIT = zoo.kits()["initschema"]

RULES = [
    dict(type="Kaiming", layer="Conv2d", mode="fan_in"),
    dict(type="TruncNormal", layer="Linear", std=0.02),
    dict(type="Constant", layer="BatchNorm2d", val=1),
]


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), key


class TestMaterialize:
    def test_faithful_equals_mmengine(self, mm: Any) -> None:
        """A model never allocated gets MMEngine's bits: faithful materialize after the
        same manual_seed as MMEngine's init_weights on the model built on the CPU."""
        theirs = zoo.toy_net(zoo.kits()["mmengine"], RULES)
        torch.manual_seed(3)
        theirs.init_weights()
        after_theirs = torch.get_rng_state()
        with torch.device("meta"):
            ours = zoo.toy_net(KIT, RULES)
        torch.manual_seed(3)
        report = ins.materialize(ours, "cpu")
        _same(_state(theirs), _state(ours))
        assert torch.equal(after_theirs, torch.get_rng_state())
        assert "8 by init_cfg rules" in report.summary()

    def test_seeded_meta_equals_eager(self) -> None:
        """Seeded values do not depend on where the model was built."""
        eager = zoo.toy_net(KIT, RULES)
        ins.compile_plan(eager).execute(seed=11)
        with torch.device("meta"):
            lazy = zoo.toy_net(KIT, RULES)
        ins.materialize(lazy, "cpu", seed=11)
        _same(_state(eager), _state(lazy))

    def test_norm_statistics_reset(self) -> None:
        with torch.device("meta"):
            model = zoo.toy_net(KIT, RULES)
        ins.materialize(model, "cpu", seed=0)
        assert torch.equal(model.bn.running_mean, torch.zeros(8))
        assert torch.equal(model.bn.running_var, torch.ones(8))
        assert int(model.bn.num_batches_tracked) == 0

    def test_unwritten_refused_before_anything(self) -> None:
        """A meta tensor nothing sets is an error naming it; nothing is allocated."""
        with torch.device("meta"):
            model = zoo.toy_net(KIT, RULES[:2])  # no rule for the BatchNorm's affine
        plan = ins.compile_plan(model)
        assert ins.unwritten(model, plan) == ["bn.weight", "bn.bias"]
        with pytest.raises(ins.InitUsageError, match=r"2 tensors .*bn\.weight, bn\.bias"):
            ins.materialize(model, "cpu", seed=0, plan=plan)
        assert all(t.is_meta for t in model.state_dict().values())
        (lint,) = [lint for lint in plan.lints if lint.kind == "stays-on-meta"]
        assert "bn.weight" in lint.message and "resets the 3 norm running" in lint.message

    def test_allow_unwritten(self) -> None:
        with torch.device("meta"):
            model = zoo.toy_net(KIT, RULES[:2])
        ins.materialize(model, "cpu", seed=0, allow_unwritten=True)
        assert not any(t.is_meta for t in model.state_dict().values())

    def test_plain_module_needs_a_plan(self) -> None:
        with torch.device("meta"):
            model = nn.Linear(4, 4)
        with pytest.raises(ins.InitUsageError) as info:
            ins.materialize(model, "cpu")
        assert str(info.value) == (
            "materialize(model) without plan= plans model.init_weights(), which needs an "
            "initschema.BaseModule, got Linear; compile the rules first and pass them: "
            "materialize(model, device, plan=initschema.compile_plan(model, init_cfg))."
        )
        assert model.weight.is_meta  # nothing allocated
        other = nn.Linear(4, 4)
        with pytest.raises(ins.InitUsageError, match="compiled for a Linear, not for"):
            ins.materialize(model, "cpu", plan=ins.compile_plan(other, RULES))

    def test_pretrained_entries_become_the_tensors(self, tmp_path: Any) -> None:
        """A checkpoint sets what it covers (no allocation first); rules the rest."""
        source = {k: torch.randn(v.shape) for k, v in zoo.toy_net(KIT).state_dict().items()}
        source["bn.num_batches_tracked"] = torch.tensor(7)
        torch.save(source, tmp_path / "m.pth")
        rules = [RULES[0], dict(type="Pretrained", checkpoint=str(tmp_path / "m.pth"))]
        with torch.device("meta"):
            model = zoo.toy_net(KIT, rules)
        ins.materialize(model, "cpu", seed=2)
        state = _state(model)
        for key in ("fc.weight", "bn.running_var", "bn.num_batches_tracked", "conv1.weight"):
            assert torch.equal(state[key], source[key]), key  # Pretrained runs last

    def test_tied_stay_tied(self) -> None:
        with torch.device("meta"):
            model = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 10, bias=False))
        model[1].weight = model[0].weight
        plan = ins.compile_plan(model, dict(type="Normal", layer="Embedding", std=0.02))
        ins.materialize(model, "cpu", seed=1, plan=plan)
        assert model[1].weight is model[0].weight
        assert len(list(model.parameters())) == 1
        assert 0.01 < float(model[0].weight.detach().std()) < 0.04

    def test_real_tensors_move_and_keep_values(self) -> None:
        with ins.params_on_meta():
            model = nn.BatchNorm1d(3)
        model.running_mean.fill_(5)
        plan = ins.compile_plan(model, dict(type="Constant", layer="BatchNorm1d", val=2))
        ins.materialize(model, "cpu", plan=plan)
        assert torch.equal(model.weight.detach(), torch.full((3,), 2.0))
        assert torch.equal(model.running_mean, torch.full((3,), 5.0))  # real: kept


class Swinish(nn.Module):
    """A constructor that reads its own tensors, as timm's and mmdet's Swin do
    (``[x.item() for x in torch.linspace(...)]``): it fails under torch.device('meta')."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("rates", torch.linspace(0, 0.2, 4))
        self.drops = [x.item() for x in self.rates]
        self.blocks = nn.ModuleList(nn.Linear(8, 8) for _ in self.drops)


class TestParamsOnMeta:
    def test_meta_device_fails_but_params_on_meta_builds(self) -> None:
        with pytest.raises((RuntimeError, NotImplementedError)), torch.device("meta"):
            Swinish()
        with ins.params_on_meta():
            model = Swinish()
        assert all(p.is_meta for p in model.parameters())
        assert not model.rates.is_meta and model.drops[-1] == pytest.approx(0.2)
        assert nn.Module.register_parameter.__name__ == "register_parameter"  # restored
        plan = ins.compile_plan(model, dict(type="Normal", layer="Linear", std=0.02))
        ins.materialize(model, "cpu", seed=4, plan=plan)
        eager = Swinish()
        ins.compile_plan(eager, dict(type="Normal", layer="Linear", std=0.02)).execute(seed=4)
        _same(_state(eager), _state(model))

    def test_requires_grad_kept(self) -> None:
        with ins.params_on_meta():
            model = nn.Linear(2, 2)
            model.bias.requires_grad_(False)
        assert model.weight.requires_grad and not model.bias.requires_grad
        assert isinstance(model.weight, nn.Parameter) and model.weight.is_meta


class Rope(nn.Module):
    """A rotary embedding: ``inv_freq`` is a non-persistent buffer no checkpoint sets."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.register_buffer("inv_freq", torch.empty(dim // 2), persistent=False)
        self.reset_inv_freq()

    def reset_inv_freq(self) -> None:
        with torch.no_grad():
            self.inv_freq.copy_(10000 ** -(torch.arange(0, self.dim, 2).float() / self.dim))


class Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rope = Rope(8)
        self.qkv = nn.Linear(8, 24)


CALL = {"type": "Call", "method": "reset_inv_freq", "layer": "Rope"}


class TestCallRule:
    def test_recomputes_buffers_on_meta(self) -> None:
        expected = 10000 ** -(torch.arange(0, 8, 2).float() / 8)
        with torch.device("meta"):
            model = Attention()
        plan = ins.compile_plan(model, [dict(type="Normal", layer="Linear"), CALL])
        assert not [lint for lint in plan.lints if lint.kind == "stays-on-meta"]
        report = ins.materialize(model, "cpu", seed=0, plan=plan)
        assert torch.equal(model.rope.inv_freq, expected)
        assert "rope.inv_freq: Call(method='reset_inv_freq'" in str(plan)
        assert "2 by init_cfg rules" in report.summary()

    def test_provenance_from_version_counters(self) -> None:
        model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 3))
        plan = ins.compile_plan(
            model,
            [
                dict(type="Constant", layer="Linear", val=0),
                dict(type="Call", method="reset_parameters", layer="Linear"),
            ],
        )
        report = plan.execute()
        row = next(r for r in report if r.path == "1.weight")
        assert row.provenance is not None and row.provenance.kind == "method"
        assert row.provenance.source == "init_cfg[1]"
        assert "4 by Call rules" in report.summary()
        assert float(model[0].weight.detach().abs().sum()) > 0  # reset_parameters ran after 0

    def test_override_and_yaml(self) -> None:
        cfg = ins.parse_init_cfg(
            OmegaConf.create(
                "type: Normal\nlayer: Linear\noverride:\n  name: rope\n  type: Call\n"
                "  method: reset_inv_freq\n"
            )
        )
        model = Attention()
        model.rope.inv_freq.zero_()
        ins.compile_plan(model, cfg).execute()
        assert float(model.rope.inv_freq[0]) == 1.0

    def test_unknown_method_is_a_config_error(self) -> None:
        with pytest.raises(ins.InitCfgError) as error:
            ins.compile_plan(Attention(), {**CALL, "method": "reset_inv_freqs"})
        (problem,) = error.value.problems
        assert problem.path == "init_cfg.method"
        assert "module 'rope' (Rope) has no method 'reset_inv_freqs'" in problem.message
        assert "did you mean 'reset_inv_freq'?" in problem.message

    @pytest.mark.parametrize(
        ("field", "value", "fragment"),
        [("method", "not a name", "should match pattern"), ("shard_safe", "yes", "boolean")],
    )
    def test_fields_validated(self, field: str, value: Any, fragment: str) -> None:
        with pytest.raises(ins.InitCfgError, match=fragment):
            ins.parse_init_cfg({**CALL, field: value})


class Wrapper(nn.Module):
    """What DDP does to paths: the model under ``module``."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module


def _seeded(model: nn.Module, cfg: Any, seed: int = 5) -> dict[str, torch.Tensor]:
    ins.compile_plan(model, cfg).execute(seed=seed)
    return {canonical_path(k): v for k, v in _state(model).items()}


class TestStreamKeys:
    def test_wrapper_names_ignored(self) -> None:
        cfg = dict(type="Normal", layer="Linear")
        torch.manual_seed(0)
        plain = _seeded(nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2)), cfg)
        ddp = _seeded(Wrapper(nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))), cfg)
        compiled = _seeded(torch.compile(nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))), cfg)
        _same(plain, ddp)
        _same(plain, compiled)

    @pytest.mark.parametrize("path", ["_orig_mod.a.b", "a._checkpoint_wrapped_module.b"])
    def test_canonical_path(self, path: str) -> None:
        assert canonical_path(path) == "a.b"
        assert canonical_path("module.a") == "a" and canonical_path("a.module.b") == "a.module.b"

    def test_tied_key_is_smallest_name(self) -> None:
        """Registration order cannot change a tied tensor's values."""

        def tied(first: str) -> nn.Module:
            model = nn.Module()
            emb, head = nn.Embedding(6, 4), nn.Linear(4, 6, bias=False)
            for name in (first, "lm_head" if first == "embed" else "embed"):
                model.add_module(name, emb if name == "embed" else head)
            model.lm_head.weight = model.embed.weight
            return model

        cfg = [dict(type="Normal", layer=["Embedding", "Linear"], std=0.02)]
        a, b = tied("embed"), tied("lm_head")
        ins.compile_plan(a, cfg).execute(seed=2)
        ins.compile_plan(b, cfg).execute(seed=2)
        assert torch.equal(a.embed.weight, b.embed.weight)
        reference = nn.Embedding(6, 4)
        standalone = nn.Module()
        standalone.embed = reference
        ins.compile_plan(standalone, cfg).execute(seed=2)
        assert torch.equal(a.embed.weight, reference.weight)  # keyed 'embed.weight'

    def test_low_precision_is_float32_rounded(self) -> None:
        """bfloat16/float16 values are the float32 stream rounded (dtype does not change the
        draw); float64 has its own stream."""
        cfg = dict(type="Normal", layer="Linear", std=0.02)
        base = nn.Linear(300, 300)
        ins.compile_plan(base, cfg).execute(seed=9)
        for dtype in (torch.bfloat16, torch.float16):
            low = nn.Linear(300, 300, dtype=dtype)
            ins.compile_plan(low, cfg).execute(seed=9)
            assert torch.equal(low.weight, base.weight.to(dtype))
        double = nn.Linear(300, 300, dtype=torch.float64)
        ins.compile_plan(double, cfg).execute(seed=9)
        assert not torch.equal(double.weight.float(), base.weight)
        assert 0.019 < float(double.weight.detach().std()) < 0.021

    def test_plan_records_the_stream(self) -> None:
        plan = ins.compile_plan(nn.Linear(2, 2), dict(type="Normal", layer="Linear"))
        assert plan.stream == STREAM == plan.to_dict()["stream"] == "tiles-v1"
        assert plan.to_dict()["actions"][0]["seeded"] == "elementwise"


def test_golden_digest() -> None:
    """Pins the values of stream tiles-v1 on this torch (a change is a new stream version).
    Two tiles and a partial one, every built-in that draws; correctness comes from the
    sharded and statistical tests, this only pins stability."""
    model = nn.ModuleDict(
        {
            "a": nn.Linear(TILE // 64, 130),
            "b": nn.Conv2d(3, 16, 5),
            "c": nn.Linear(7, 7),
            "d": nn.Linear(9, 9),
            "e": nn.Linear(33, 3),
            "f": nn.Linear(5, 5),
        }
    )
    cfg = [
        dict(type="TruncNormal", layer="Linear", std=0.02),
        dict(
            type="Kaiming",
            override=[dict(name="b"), dict(name="c", type="Xavier", distribution="uniform")],
        ),
        dict(type="Uniform", a=-1, b=1, override=dict(name="d")),
        dict(type="Normal", std=3, override=dict(name="e")),
        dict(type="Caffe2Xavier", override=dict(name="f")),
    ]
    ins.compile_plan(model, cfg).execute(seed=20261126)
    digest = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().numpy().tobytes())
    assert digest.hexdigest()[:16] == "739d49e65e23a56c", digest.hexdigest()[:16]
