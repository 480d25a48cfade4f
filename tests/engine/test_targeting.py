"""Targeting beyond MMEngine: ``params`` patterns over tensor paths, override names that are
dotted paths or patterns, ``match: mro``; the pattern language itself."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

import initschema as ins
from initschema.cfg.patterns import compile_path_pattern


class Block(nn.Module):
    def __init__(self, dim: int = 8) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attn = nn.Module()
        self.attn.qkv = nn.Linear(dim, 3 * dim)
        self.attn.proj = nn.Linear(dim, dim)
        self.mlp = nn.Module()
        self.mlp.fc1 = nn.Linear(dim, 2 * dim)
        self.mlp.fc2 = nn.Linear(2 * dim, dim)


class ViT(nn.Module):
    """ViT-shaped: tensors that are no module's weight (pos_embed, cls_token)."""

    def __init__(self, depth: int = 3, dim: int = 8) -> None:
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, 4, 4)
        self.cls_token = nn.Parameter(torch.full((1, 1, dim), 5.0))
        self.pos_embed = nn.Parameter(torch.full((1, 17, dim), 5.0))
        self.blocks = nn.ModuleList(Block(dim) for _ in range(depth))
        self.head = nn.Linear(dim, 10)


def _plan(model: nn.Module, cfg: Any, **kwargs: Any) -> ins.InitPlan:
    return ins.compile_plan(model, cfg, log=False, **kwargs)


def _writer(plan: ins.InitPlan, path: str) -> ins.Action:
    return plan.actions[plan.last_writers()[path]]


class TestPatterns:
    @pytest.mark.parametrize(
        ("pattern", "matches", "misses"),
        [
            ("pos_embed", ["pos_embed"], ["a.pos_embed", "pos_embedding"]),
            ("*.bias", ["fc.bias"], ["bias", "a.b.bias"]),
            ("**.bias", ["bias", "fc.bias", "a.b.bias"], ["fc.biases"]),
            (
                "blocks.*.attn.proj.weight",
                ["blocks.10.attn.proj.weight"],
                ["blocks.attn.proj.weight"],
            ),
            ("blocks.**.weight", ["blocks.weight", "blocks.0.a.weight"], ["blocksx.weight"]),
            ("blocks.**", ["blocks", "blocks.0.w"], ["blocksx", "x.blocks"]),
            ("fc*", ["fc", "fc2"], ["fc2.weight", "afc"]),
            (r"re:blocks\.(0|11)\..*", ["blocks.0.x", "blocks.11.y"], ["blocks.1.x"]),
        ],
    )
    def test_language(self, pattern: str, matches: list[str], misses: list[str]) -> None:
        regex = compile_path_pattern(pattern)
        assert all(regex.fullmatch(path) for path in matches)
        assert not any(regex.fullmatch(path) for path in misses)

    @pytest.mark.parametrize(
        ("pattern", "reason"),
        [
            ("a..b", "empty name"),
            ("a.**b", "'\\*\\*' must be a whole name"),
            ("re:(", "not a regular expression"),
        ],
    )
    def test_bad_patterns_are_config_errors(self, pattern: str, reason: str) -> None:
        with pytest.raises(ins.InitCfgError, match=f"init_cfg.params: .*{reason}"):
            ins.parse_init_cfg(dict(type="Normal", params=[pattern]))
        with pytest.raises(ins.InitCfgError, match=f"init_cfg.override.name: .*{reason}"):
            ins.parse_init_cfg(dict(type="Normal", override=dict(name=pattern)))


class TestParams:
    def test_pos_embed_and_cls_token(self) -> None:
        """Tensors that are no module's weight, by name, with the formula."""
        model = ViT()
        cfg = [
            dict(type="TruncNormal", params=["pos_embed"], std=0.02),
            dict(type="Normal", params="cls_token", std=1e-6),
        ]
        plan = _plan(model, cfg)
        report = plan.execute(seed=0)
        assert float(model.pos_embed.detach().abs().max()) <= 2.0
        assert 0.01 < float(model.pos_embed.detach().std()) < 0.03
        assert float(model.cls_token.detach().abs().max()) < 1e-5
        assert report["pos_embed"].provenance.initializer.startswith("TruncNormal(")  # type: ignore[union-attr]
        # the other tensors are untouched
        assert report["head.weight"].provenance is None

    def test_matched_bias_gets_the_formula(self) -> None:
        """A bias selected by `params` gets the formula, not the rule's `bias`; the rule's
        `bias` applies to the modules `layer` matches."""
        model = ViT()
        cfg = dict(type="Constant", val=2.0, bias=3.0, layer="Conv2d", params=["head.bias"])
        _plan(model, cfg).execute()
        assert torch.all(model.head.bias == 2.0) and torch.all(model.head.weight != 2.0)
        assert torch.all(model.patch_embed.weight == 2.0)
        assert torch.all(model.patch_embed.bias == 3.0)

    def test_order_layer_then_params_then_override(self) -> None:
        model = ViT()
        cfg = dict(
            type="Constant",
            val=1.0,
            layer="Linear",
            params=["blocks.*.attn.proj.weight"],
            override=dict(name="blocks.0.attn.proj", type="Constant", val=3.0),
        )
        plan = _plan(model, cfg)
        plan.execute()
        assert torch.all(model.blocks[0].attn.proj.weight == 3.0)
        assert torch.all(model.blocks[1].attn.proj.weight == 1.0)
        # layer wrote it, params wrote it again, the override last
        writes = [i for i, a in enumerate(plan.actions) if "blocks.0.attn.proj.weight" in a.params]
        sources = [plan.actions[i].source for i in writes]
        assert sources == ["init_cfg", "init_cfg", "init_cfg.override"]
        assert [plan.actions[i].formula for i in writes] == [False, True, False]
        assert "init_cfg ×2" in str(plan).split("blocks.0.attn.proj.weight")[1].splitlines()[0]

    def test_relative_to_the_rule_module(self) -> None:
        """Patterns are relative to the module the rule is attached to."""
        model = ViT()
        block = model.blocks[1]
        _plan(block, dict(type="Constant", val=4.0, params=["attn.*.weight"])).execute()
        assert torch.all(block.attn.qkv.weight == 4.0) and torch.all(block.attn.proj.weight == 4)
        assert not torch.all(block.mlp.fc1.weight == 4.0)

    def test_buffers_too(self) -> None:
        model = nn.BatchNorm1d(3)
        _plan(model, dict(type="Constant", val=7.0, params=["running_var"])).execute()
        assert torch.all(model.running_var == 7.0)

    def test_fan_based_on_a_1d_tensor_is_a_compile_error(self) -> None:
        model = ViT()
        before = {k: v.clone() for k, v in model.state_dict().items()}
        with pytest.raises(ins.InitCfgError) as error:
            _plan(model, dict(type="Kaiming", params=["blocks.0.norm.weight"]))
        (problem,) = error.value.problems
        assert problem.path == "init_cfg"
        assert "at module 'blocks.0.norm'" in problem.message
        assert "needs fan-in/fan-out" in problem.message and "LayerNorm.weight" in problem.message
        assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())

    def test_unmatched_pattern_is_a_lint_and_strict_error(self) -> None:
        model = ViT()
        cfg = dict(type="Normal", params=["pos_embed", "pos_embedding"])
        plan = _plan(model, cfg)
        (lint,) = [lint for lint in plan.lints if lint.kind == "unmatched-pattern"]
        assert lint.path == "init_cfg.params" and "'pos_embedding'" in lint.message
        with pytest.raises(ins.InitCfgError, match="unmatched-pattern"):
            _plan(model, cfg, strict=True)

    def test_tied_tensor_written_once(self) -> None:
        model = nn.Sequential(nn.Embedding(5, 4), nn.Linear(4, 5, bias=False))
        model[1].weight = model[0].weight
        plan = _plan(model, dict(type="Constant", val=1.0, params=["**.weight"]))
        (action,) = [a for a in plan.actions if a.kind == "write"]
        assert action.params == ("0.weight",)

    def test_model_order_in_faithful_mode_is_mmengine_like(self) -> None:
        """Faithful draws follow model order, one tensor after another, from the global
        RNG: the same bits as the same draws made by hand."""
        model = ViT()
        torch.manual_seed(0)
        _plan(model, dict(type="Normal", std=0.02, params=["blocks.*.mlp.fc2.weight"])).execute()
        torch.manual_seed(0)
        expected = [torch.empty(8, 16).normal_(0, 0.02) for _ in range(3)]
        for block, values in zip(model.blocks, expected, strict=True):
            assert torch.equal(block.mlp.fc2.weight.detach(), values)


class TestOverrideNames:
    def test_dotted_path(self) -> None:
        model = ViT()
        _plan(model, dict(type="Constant", val=2.0, override=dict(name="blocks.1.mlp"))).execute()
        assert torch.all(model.blocks[1].mlp.fc1.weight == 2.0)
        assert not torch.all(model.blocks[0].mlp.fc1.weight == 2.0)

    def test_pattern_in_model_order(self) -> None:
        model = ViT()
        plan = _plan(model, dict(type="Constant", val=0.0, override=dict(name="blocks.*.mlp.fc2")))
        written = [a.module for a in plan.actions if a.kind == "write"]
        assert written == ["blocks.0.mlp.fc2", "blocks.1.mlp.fc2", "blocks.2.mlp.fc2"]

    def test_missing_dotted_segment_is_an_error(self) -> None:
        with pytest.raises(ins.InitCfgError) as error:
            _plan(ViT(), dict(type="Normal", override=dict(name="blocks.0.mlpp.fc2")))
        (problem,) = error.value.problems
        assert problem.path == "init_cfg.override.name"
        assert "module 'blocks.0' (Block) has no attribute 'mlpp'; did you mean 'mlp'?" in (
            problem.message
        )

    def test_pattern_matching_nothing_is_a_lint(self) -> None:
        plan = _plan(ViT(), dict(type="Normal", override=dict(name="stages.*")))
        (lint,) = [lint for lint in plan.lints if lint.kind == "unmatched-pattern"]
        assert lint.path == "init_cfg.override.name" and "'stages.*'" in lint.message


class Base(nn.Linear):
    pass


class Middle(Base):
    pass


class Leaf(Middle):
    pass


class TestMatchMro:
    def test_bases_is_mmengine_and_mro_reaches_further(self) -> None:
        """MMEngine's trap: layer='Linear' misses a grandchild class of Linear."""
        for match, expected in (("bases", False), ("mro", True)):
            model = nn.Sequential(Leaf(2, 2))
            _plan(model, dict(type="Constant", val=9.0, layer="Linear", match=match)).execute()
            assert bool(torch.all(model[0].weight == 9.0)) is expected

    def test_mro_quiets_the_layer_lint(self) -> None:
        model = nn.Sequential(Leaf(2, 2))
        plan = _plan(model, dict(type="Constant", val=9.0, layer="Linear"))
        assert "unmatched-layer" in {lint.kind for lint in plan.lints}
        plan = _plan(model, dict(type="Constant", val=9.0, layer="Linear", match="mro"))
        assert "unmatched-layer" not in {lint.kind for lint in plan.lints}

    def test_bad_value(self) -> None:
        with pytest.raises(ins.InitCfgError, match=r"init_cfg\.match"):
            ins.parse_init_cfg(dict(type="Normal", layer="Linear", match="all"))
