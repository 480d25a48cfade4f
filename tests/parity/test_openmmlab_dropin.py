"""initschema as a drop-in for OpenMMLab model code: small models that mirror the real
classes that broke it (mmdet RTMDet/TOOD heads, PVT, mmseg ViT, mmpretrain ViT and MAE,
AnchorFreeHead, DETR, TridentNet), each compared bitwise with MMEngine where MMEngine
defines the behaviour (same seed: every tensor and the RNG state afterwards)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import initschema as ins
from initschema_testing.asserts import assert_bitwise_equal, state_of

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def engines() -> dict[str, SimpleNamespace]:
    """The names model code imports from ``mmengine.model``, for each engine."""
    names = [
        "BaseModule",
        "Sequential",
        "ModuleList",
        "normal_init",
        "constant_init",
        "xavier_init",
        "bias_init_with_prob",
        "trunc_normal_",
    ]
    found = {"initschema": SimpleNamespace(**{n: getattr(ins, n) for n in names})}
    pytest.importorskip("mmengine.model", reason="mmengine-lite is not installed")
    from mmengine import model as mm
    from mmengine.logging import MMLogger
    from mmengine.model import weight_init

    MMLogger.get_current_instance().setLevel(logging.ERROR)
    found["mmengine"] = SimpleNamespace(
        **{n: getattr(mm, n, None) or getattr(weight_init, n) for n in names}
    )
    return found


def _same(
    build: Callable[[SimpleNamespace], nn.Module],
    run: Callable[[nn.Module], None] = lambda model: model.init_weights(),  # type: ignore[attr-defined]
    seed: int = 0,
) -> nn.Module:
    """Build and initialize with both engines; assert bitwise-equal results; return ours."""
    results, models = [], {}
    for name, kit in engines().items():
        torch.manual_seed(1234)
        model = build(kit)
        torch.manual_seed(seed)
        run(model)
        results.append((state_of(model), torch.get_rng_state()))
        models[name] = model
    (ours, our_rng), (theirs, their_rng) = results
    assert_bitwise_equal(theirs, ours)
    assert torch.equal(our_rng, their_rng), "RNG consumed differently"
    return models["initschema"]


def _ours(build: Callable[[SimpleNamespace], nn.Module]) -> nn.Module:
    """A fresh, uninitialized model built on initschema."""
    return build(engines()["initschema"])


def _lints(plan: ins.InitPlan) -> dict[str, ins.Lint]:
    return {lint.kind: lint for lint in plan.lints}


# --- 1. init_cfg of a class whose init_weights never calls super() -------------------------


def rtmdet_like(kit: SimpleNamespace) -> nn.Module:
    """ATSSHead's default init_cfg overrides 'atss_cls'; RTMDetHead replaces that layer and
    its own init_weights never calls super(), so MMEngine never reads the init_cfg."""

    class ATSSHead(kit.BaseModule):  # type: ignore[misc, name-defined]
        def __init__(self, init_cfg: Any = None) -> None:
            super().__init__(
                init_cfg
                or dict(
                    type="Normal",
                    layer="Conv2d",
                    std=0.01,
                    override=dict(type="Normal", name="atss_cls", std=0.01, bias_prob=0.01),
                )
            )
            self.init_layers()

        def init_layers(self) -> None:
            self.cls_convs = nn.Sequential(nn.Conv2d(4, 4, 3), nn.Conv2d(4, 4, 3))
            self.atss_cls = nn.Conv2d(4, 3, 3)

    class RTMDetHead(ATSSHead):
        def init_layers(self) -> None:
            self.cls_convs = nn.Sequential(nn.Conv2d(4, 4, 3), nn.Conv2d(4, 4, 3))
            self.rtm_cls = nn.Conv2d(4, 3, 1)

        def init_weights(self) -> None:
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    kit.normal_init(m, mean=0, std=0.01)
            kit.normal_init(self.rtm_cls, std=0.01, bias=kit.bias_init_with_prob(0.01))

    class Detector(kit.BaseModule):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__(dict(type="Kaiming", layer="Conv2d"))
            self.backbone = nn.Conv2d(3, 4, 3)
            self.bbox_head = RTMDetHead()

    return Detector()


class TestInitCfgOfUserInitWeights:
    def test_head_overriding_a_removed_layer_initializes_like_mmengine(self) -> None:
        """RTMDet/TOOD: a default override naming a layer the subclass lacks does not stop it."""
        _same(rtmdet_like)
        plan = ins.compile_plan(_ours(rtmdet_like))
        (lint,) = [lint for lint in plan.lints if lint.kind == "deferred-init-cfg"]
        assert lint.level == "info"
        assert lint.path == "bbox_head.init_cfg.override.name"
        assert "RTMDetHead overrides init_weights, so this is an error only if" in lint.message

    def test_the_same_problem_is_an_error_when_super_runs(self) -> None:
        """A class that does call super().init_weights() with that init_cfg fails there,
        with the config path, before that part writes anything."""
        kit = engines()["initschema"]

        class Head(kit.BaseModule):  # type: ignore[misc, name-defined]
            def __init__(self) -> None:
                cfg = dict(type="Normal", layer="Conv2d", override=dict(name="atss_cls"))
                super().__init__(cfg)
                self.conv = nn.Conv2d(2, 2, 1)

            def init_weights(self) -> None:
                super().init_weights()

        class Net(kit.BaseModule):  # type: ignore[misc, name-defined]
            def __init__(self) -> None:
                super().__init__()
                self.head = Head()

        model = Net()
        before = state_of(model)
        with pytest.raises(ins.InitCfgError, match=r"^head\.init_cfg\.override\.name: module"):
            model.init_weights()
        assert_bitwise_equal(before, state_of(model))


def pvt_like(kit: SimpleNamespace, init_cfg: Any) -> nn.Module:
    """mmdet PVT: ``init_cfg=dict(checkpoint=...)`` without a type, read by its own code."""

    class PVT(kit.BaseModule):  # type: ignore[misc, name-defined]
        def __init__(self, init_cfg: Any = None) -> None:
            super().__init__(init_cfg)
            self.embed = nn.Linear(4, 8)
            self.norm = nn.LayerNorm(8)

        def init_weights(self) -> None:
            if self.init_cfg is None:
                kit.trunc_normal_(self.embed.weight, std=0.02)
                kit.constant_init(self.norm, 1, 0)
            else:
                state = torch.load(self.init_cfg["checkpoint"], weights_only=True)
                self.load_state_dict(state, strict=False)

    class Detector(kit.BaseModule):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.backbone = PVT(init_cfg)
            self.neck = nn.Linear(8, 2)

    return Detector()


def mmseg_vit_like(kit: SimpleNamespace, init_cfg: Any) -> nn.Module:
    """mmseg ViT: ``type='Pretrained_Part'`` handled by its own code; any other init_cfg
    goes to ``super().init_weights()``."""

    class ViT(kit.BaseModule):  # type: ignore[misc, name-defined]
        def __init__(self, init_cfg: Any = None) -> None:
            super().__init__(init_cfg)
            self.pos_embed = nn.Parameter(torch.zeros(1, 5, 8))
            self.proj = nn.Linear(8, 8)

        def init_weights(self) -> None:
            if isinstance(self.init_cfg, dict) and self.init_cfg.get("type") == "Pretrained_Part":
                state = torch.load(self.init_cfg["checkpoint"], weights_only=True)
                part = {k[len("image_encoder.") :]: v for k, v in state.items()}
                self.load_state_dict(part, strict=False)
            elif self.init_cfg is not None:
                super().init_weights()
            else:
                kit.trunc_normal_(self.pos_embed, std=0.02)

    return ViT(init_cfg)


class TestModulesThatReadTheirOwnInitCfg:
    def test_checkpoint_without_type(self, tmp_path: Path) -> None:
        """PVT's init_cfg=dict(checkpoint=...) builds, and loads as MMEngine loads it."""
        ckpt = tmp_path / "pvt.pth"
        torch.save({"embed.weight": torch.full((8, 4), 0.5), "norm.bias": torch.ones(8)}, ckpt)
        build = lambda kit: pvt_like(kit, dict(checkpoint=str(ckpt)))  # noqa: E731
        model = _same(build)
        assert torch.equal(model.backbone.embed.weight, torch.full((8, 4), 0.5))
        plan = ins.compile_plan(_ours(build))
        (call,) = [a for a in plan.actions if a.kind == "call"]
        assert call.describe() == "user-defined PVT.init_weights (given its init_cfg)"
        assert _lints(plan)["deferred-init-cfg"].path == "backbone.init_cfg"

    def test_pretrained_part(self, tmp_path: Path) -> None:
        """mmseg's type='Pretrained_Part' builds and loads through the class's own code."""
        ckpt = tmp_path / "sam.pth"
        torch.save({"image_encoder.proj.weight": torch.eye(8)}, ckpt)
        cfg = dict(type="Pretrained_Part", checkpoint=str(ckpt))
        build = lambda kit: mmseg_vit_like(kit, cfg)  # noqa: E731
        model = _same(build)
        assert torch.equal(model.proj.weight, torch.eye(8))
        plan = ins.compile_plan(_ours(build))
        (lint,) = [lint for lint in plan.lints if lint.kind == "deferred-init-cfg"]
        assert lint.path == "init_cfg.type"
        assert "'Pretrained_Part'" in lint.message

    def test_report_says_the_init_cfg_went_to_user_code(self, tmp_path: Path) -> None:
        """After running, the report says which init_cfg BaseModule never applied."""
        ckpt = tmp_path / "pvt.pth"
        torch.save({"embed.weight": torch.full((8, 4), 0.5)}, ckpt)
        report = ins.compile_plan(
            _ours(lambda kit: pvt_like(kit, dict(checkpoint=str(ckpt))))
        ).execute()
        assert report.findings == (
            "the init_cfg of 'backbone' (PVT) was not applied: its init_weights never called "
            "super().init_weights() (fine if that code reads the init_cfg itself).",
        )
        assert report.to_dict()["findings"] == list(report.findings)
        applied = ins.compile_plan(
            _ours(lambda kit: mmseg_vit_like(kit, dict(type="Normal", layer="Linear")))
        ).execute()
        assert applied.findings == ()

    def test_an_init_cfg_for_super_still_works(self) -> None:
        """The same class given an ordinary rule runs it through super().init_weights()."""
        _same(lambda kit: mmseg_vit_like(kit, dict(type="Normal", layer="Linear", std=0.5)))

    def test_classes_without_own_init_weights_still_validate_when_built(self) -> None:
        """Validation at construction stays for a class that does not override init_weights."""
        with pytest.raises(ins.InitCfgError, match="the rule has no 'type'"):
            ins.BaseModule(dict(checkpoint="x.pth"))

    def test_bad_init_cfg_is_logged_at_construction(self, caplog: pytest.LogCaptureFixture) -> None:
        """The problems of a deferred init_cfg are logged when the module is built."""
        with caplog.at_level(logging.INFO, logger="initschema"):
            mmseg_vit_like(engines()["initschema"], dict(type="Pretrained_Part", checkpoint="x"))
        messages = [r.getMessage() for r in caplog.records]
        assert any("[deferred-init-cfg] ViT.init_cfg.type" in m for m in messages)


# --- 3. Pretrained through the model's load hooks ------------------------------------------


def _resize_pos_embed(pos_embed: torch.Tensor, tokens: int) -> torch.Tensor:
    cls, grid = pos_embed[:, :1], pos_embed[:, 1:]
    grid = F.interpolate(grid.transpose(1, 2), size=tokens - 1, mode="linear", align_corners=False)
    return torch.cat([cls, grid.transpose(1, 2)], dim=1)


def classifier_like(kit: SimpleNamespace, patches: int, init_cfg: Any = None) -> nn.Module:
    """mmpretrain ViT: a load pre-hook resizes ``pos_embed`` to the model's patch count."""

    class VisionTransformer(kit.BaseModule):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__(init_cfg)
            self.patch_embed = nn.Conv2d(3, 8, 4, 4)
            self.pos_embed = nn.Parameter(torch.zeros(1, patches + 1, 8))
            self.norm = nn.LayerNorm(8)
            self._register_load_state_dict_pre_hook(self._prepare_pos_embed)

        def _prepare_pos_embed(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
            name = prefix + "pos_embed"
            if name in state_dict and state_dict[name].shape != self.pos_embed.shape:
                state_dict[name] = _resize_pos_embed(state_dict[name], self.pos_embed.shape[1])

    class ImageClassifier(kit.BaseModule):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.backbone = VisionTransformer()
            self.head = nn.Linear(8, 10)

    return ImageClassifier()


class TestLoadHooks:
    @pytest.fixture
    def ckpt_224(self, tmp_path: Path) -> Path:
        """A classifier checkpoint with 16 patches ('224'), keys under 'backbone.'."""
        torch.manual_seed(7)
        source = classifier_like(engines()["initschema"], 16)
        for p in source.parameters():
            nn.init.normal_(p)
        path = tmp_path / "vit224.pth"
        torch.save({"state_dict": source.state_dict()}, path)
        return path

    def test_pos_embed_resized_by_a_pre_hook(self, ckpt_224: Path) -> None:
        """A '384' model loading the '224' checkpoint gets an interpolated pos_embed, as in
        MMEngine, not a skipped entry."""
        cfg = dict(type="Pretrained", checkpoint=str(ckpt_224), prefix="backbone.")
        build = lambda kit: classifier_like(kit, 36, cfg)  # noqa: E731
        model = _same(build)
        assert model.backbone.pos_embed.abs().sum() > 0
        plan = ins.compile_plan(_ours(build))
        lint = _lints(plan)["load-hooks"]
        assert "pos_embed (1, 17, 8) → (1, 37, 8)" in lint.message
        assert "checkpoint-mismatch" not in _lints(plan)
        (load,) = [a for a in plan.actions if a.kind == "load"]
        assert "backbone.pos_embed" in load.params
        assert "reshaped by load code (1, 17, 8) → (1, 37, 8)" in load.describe_param(
            "backbone.pos_embed"
        )

    def test_meta_model_through_hooks(self, ckpt_224: Path) -> None:
        """On the meta device the hooked load allocates and fills, with no random fill."""
        cfg = dict(type="Pretrained", checkpoint=str(ckpt_224), prefix="backbone.")
        kit = engines()["initschema"]
        eager = classifier_like(kit, 36, cfg)
        eager.init_weights()
        with torch.device("meta"):
            lazy = classifier_like(kit, 36, cfg)
        ins.compile_plan(lazy).execute()
        backbone = {k: v for k, v in state_of(eager).items() if k.startswith("backbone.")}
        assert_bitwise_equal(backbone, {k: v for k, v in state_of(lazy).items() if k in backbone})

    def test_mismatch_after_hooks_is_checked_at_compile_time(self, tmp_path: Path) -> None:
        """on_mismatch: error sees shapes after the hooks: a resizable entry passes, a
        wrong width fails before any write."""
        torch.manual_seed(0)
        source = classifier_like(engines()["initschema"], 16)
        state = {f"backbone.{k}": v for k, v in source.backbone.state_dict().items()}
        state["backbone.norm.weight"] = torch.ones(5)
        torch.save(state, tmp_path / "bad.pth")
        cfg = dict(
            type="Pretrained",
            checkpoint=str(tmp_path / "bad.pth"),
            prefix="backbone.",
            on_mismatch="error",
        )
        model = classifier_like(engines()["initschema"], 36, cfg)
        before = state_of(model)
        with pytest.raises(ins.InitCfgError) as info:
            model.init_weights()
        assert "norm.weight: copying a param with shape torch.Size([5])" in str(info.value)
        assert "pos_embed" not in str(info.value)
        assert_bitwise_equal(before, state_of(model))


def fcos_like(kit: SimpleNamespace, init_cfg: Any) -> nn.Module:
    """mmdet AnchorFreeHead: ``_load_from_state_dict`` renames legacy 'fcos_cls' keys to
    'conv_cls' when the checkpoint carries no version for it."""

    class AnchorFreeHead(kit.BaseModule):  # type: ignore[misc, name-defined]
        _version = 1

        def __init__(self) -> None:
            super().__init__()
            self.conv_cls = nn.Conv2d(4, 3, 3)
            self.conv_reg = nn.Conv2d(4, 4, 3)

        def _load_from_state_dict(
            self, state_dict: dict[str, Any], prefix: str, local_metadata: dict[str, Any],
            *args: Any,
        ) -> None:  # fmt: skip
            if local_metadata.get("version") is None:
                for key in [k for k in state_dict if k.startswith(prefix)]:
                    parts = key[len(prefix) :].split(".")
                    if parts[0].endswith("cls") or parts[0].endswith("reg"):
                        parts[0] = "conv_" + parts[0][-3:]
                        state_dict[prefix + ".".join(parts)] = state_dict.pop(key)
            super()._load_from_state_dict(state_dict, prefix, local_metadata, *args)

    class FCOS(kit.BaseModule):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__(init_cfg)
            self.backbone = nn.Conv2d(3, 4, 3)
            self.bbox_head = AnchorFreeHead()

    return FCOS()


class TestAncestorLoadCode:
    def test_legacy_keys_renamed_by_the_head(self, tmp_path: Path) -> None:
        """A checkpoint with 'bbox_head.fcos_cls.*' keys and no versions loads into
        'conv_cls' through the head's own _load_from_state_dict, as in MMEngine."""
        state = {
            "backbone.weight": torch.full((4, 3, 3, 3), 0.25),
            "bbox_head.fcos_cls.weight": torch.full((3, 4, 3, 3), 2.0),
            "bbox_head.fcos_cls.bias": torch.full((3,), 3.0),
            "bbox_head.fcos_reg.weight": torch.full((4, 4, 3, 3), 4.0),
        }
        torch.save(state, tmp_path / "fcos.pth")
        cfg = dict(type="Pretrained", checkpoint=str(tmp_path / "fcos.pth"))
        build = lambda kit: fcos_like(kit, [dict(type="Normal", layer="Conv2d"), cfg])  # noqa: E731
        model = _same(build)
        assert torch.equal(model.bbox_head.conv_cls.bias, torch.full((3,), 3.0))
        plan = ins.compile_plan(_ours(build))
        assert "checkpoint-unexpected" not in _lints(plan)
        assert "bbox_head.conv_cls.weight from 'bbox_head.fcos_cls.weight'" in str(
            _lints(plan)["load-hooks"]
        )
        report = plan.execute()
        assert report["bbox_head.conv_cls.bias"].provenance.initializer.startswith(  # type: ignore[union-attr]
            "load 'bbox_head.fcos_cls.bias'"
        )

    def test_versions_in_the_checkpoint_are_honoured(self, tmp_path: Path) -> None:
        """With the state dict's _metadata saying version 1, nothing is renamed (as in
        MMEngine): the legacy keys are unexpected and conv_cls keeps its rule's values."""
        torch.manual_seed(0)
        source = fcos_like(engines()["initschema"], None)
        state = source.state_dict()
        for name in ("weight", "bias"):
            state[f"bbox_head.fcos_cls.{name}"] = state.pop(f"bbox_head.conv_cls.{name}")
        torch.save(state, tmp_path / "v1.pth")
        cfg = dict(type="Pretrained", checkpoint=str(tmp_path / "v1.pth"))
        build = lambda kit: fcos_like(kit, [dict(type="Normal", layer="Conv2d"), cfg])  # noqa: E731
        _same(build)
        assert "2 keys of" in str(_lints(ins.compile_plan(_ours(build)))["checkpoint-unexpected"])


# --- 4. A BaseModule shared by two parents -------------------------------------------------


def shared(kit: SimpleNamespace, own: str) -> nn.Module:
    """One block held by two parents; ``own`` picks its init_weights: 'none' (BaseModule's),
    'super' (calls super() then writes), 'plain' (never calls super()), 'parent' (the
    first parent's own init_weights initializes it explicitly)."""

    class Block(kit.BaseModule):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__(dict(type="Normal", layer="Linear", std=0.5))
            self.fc = nn.Linear(4, 4)

    class SuperBlock(Block):
        def init_weights(self) -> None:
            super().init_weights()
            nn.init.uniform_(self.fc.bias)

    class PlainBlock(Block):
        def init_weights(self) -> None:
            nn.init.normal_(self.fc.weight)

    block = {"super": SuperBlock, "plain": PlainBlock}.get(own, Block)()

    class Parent(kit.BaseModule):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__(dict(type="Constant", val=0.1, layer="Linear"))
            self.block = block
            self.fc = nn.Linear(4, 2)

    class EagerParent(Parent):
        def init_weights(self) -> None:
            nn.init.normal_(self.fc.weight)
            self.block.init_weights()

    class Root(kit.BaseModule):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.a = EagerParent() if own == "parent" else Parent()
            self.b = Parent()

    return Root()


class TestSharedModules:
    @pytest.mark.parametrize("own", ["none", "super", "plain", "parent"])
    def test_is_init_is_read_when_the_loop_reaches_it(self, own: str) -> None:
        """The shared block's init_weights runs again or not exactly as in MMEngine."""
        _same(lambda kit: shared(kit, own))

    def test_plan_guards_the_second_visit(self) -> None:
        """The plan keeps a guard that reads is_init when it runs."""
        model = shared(engines()["initschema"], "super")
        kinds = [(a.kind, a.module) for a in ins.compile_plan(model).actions]
        assert kinds.count(("guard", "b.block")) == 1
        assert kinds.count(("call", "b.block")) == 1


# --- 5. bias_init_with_prob, bit for bit ---------------------------------------------------


class TestBiasPrior:
    def test_every_prior_on_a_grid(self) -> None:
        """The same float as MMEngine's -np.log((1-p)/p) for p = 0.001 … 0.999."""
        mm = engines()["mmengine"]
        for step in range(1, 1000):
            p = step / 1000
            assert ins.bias_init_with_prob(p) == mm.bias_init_with_prob(p), p

    @pytest.mark.parametrize("prior", [0.459, 0.496, 0.506, 0.508, 0.524, 0.806])
    def test_float64_model(self, prior: float) -> None:
        """Priors where math.log and numpy's log round differently: same bits in float64."""

        def build(kit: SimpleNamespace) -> nn.Module:
            class Head(kit.BaseModule):  # type: ignore[misc, name-defined]
                def __init__(self) -> None:
                    super().__init__(dict(type="Normal", layer="Conv2d", bias_prob=prior))
                    self.cls = nn.Conv2d(2, 3, 1)

            return Head().double()

        _same(build)


# --- 6. Reports and lints that tell the truth ----------------------------------------------


def detr_like(kit: SimpleNamespace) -> nn.Module:
    """DETR-family: init_weights calls super() and then writes more."""

    class Encoder(kit.BaseModule):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.layers = nn.ModuleList([nn.Linear(8, 8) for _ in range(2)])

    class DeformableDETR(kit.BaseModule):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__(dict(type="Constant", val=0.5, layer="LayerNorm"))
            self.encoder = Encoder()
            self.norm = nn.LayerNorm(8)
            self.level_embed = nn.Parameter(torch.empty(4, 8))

        def init_weights(self) -> None:
            super().init_weights()
            for layer in self.encoder.layers:
                kit.xavier_init(layer, distribution="uniform")
            nn.init.normal_(self.level_embed)

    return DeformableDETR()


def mae_like(kit: SimpleNamespace) -> nn.Module:
    """MAE-ViT: super() writes the patch projection, then code writes through ``.data``."""

    class MAEViT(kit.BaseModule):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__(dict(type="Kaiming", layer="Conv2d"))
            self.proj = nn.Conv2d(3, 8, 2, 2)
            self.pos_embed = nn.Parameter(torch.zeros(1, 5, 8))
            self.norm = nn.LayerNorm(8)

        def init_weights(self) -> None:
            super().init_weights()
            self.pos_embed.data.copy_(torch.linspace(-1, 1, 40).view(1, 5, 8))
            w = self.proj.weight.data
            nn.init.xavier_uniform_(w.view([w.shape[0], -1]))

    return MAEViT()


class TestReports:
    def test_report_covers_what_user_code_writes_after_super(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """DETR: the logged report and lints come from the outermost call, so level_embed and
        the encoder's linears are written, not 'unchanged'."""
        with caplog.at_level(logging.INFO, logger="initschema"):
            _same(detr_like)
        summaries = [r.getMessage() for r in caplog.records if "initialized" in r.getMessage()]
        assert summaries == [
            "initialized DeformableDETR: 7 parameters, 2 by init_cfg rules, "
            "5 by user init_weights, 0 unchanged"
        ]
        assert not any("keep PyTorch's default" in r.getMessage() for r in caplog.records)
        report = ins.compile_plan(_ours(detr_like)).execute()
        assert report["level_embed"].provenance.initializer == (  # type: ignore[union-attr]
            "user-defined DeformableDETR.init_weights (given its init_cfg)"
        )
        assert report["norm.weight"].provenance.source == "init_cfg"  # type: ignore[union-attr]

    def test_writes_through_data_are_reported(self) -> None:
        """MAE: .data writes are invisible to version counters but not to the report."""
        _same(mae_like)
        report = ins.compile_plan(_ours(mae_like)).execute()
        hidden = "changed by user code (not seen by version counters)"
        assert report["pos_embed"].provenance.initializer == hidden  # type: ignore[union-attr]
        assert report["proj.weight"].provenance.initializer == hidden  # type: ignore[union-attr]
        assert report["proj.bias"].provenance.initializer == "0 (bias of the Kaiming rule)"  # type: ignore[union-attr]
        assert report["norm.weight"].provenance is None

    def test_possibly_uninitialized(self) -> None:
        """TridentNet: a user module's torch.Tensor(n) parameter nothing writes is a warning;
        a built-in's default is only info."""
        kit = engines()["initschema"]

        class TridentConv(kit.BaseModule):  # type: ignore[misc, name-defined]
            def __init__(self) -> None:
                super().__init__()
                self.weight = nn.Parameter(torch.Tensor(4, 4, 3, 3))

        class Net(kit.BaseModule):  # type: ignore[misc, name-defined]
            def __init__(self) -> None:
                super().__init__(dict(type="Kaiming", layer="Conv2d"))
                self.conv = nn.Conv2d(3, 4, 3)
                self.trident = TridentConv()
                self.norm = nn.BatchNorm2d(4)

        plan = ins.compile_plan(Net())
        lints = _lints(plan)
        assert lints["possibly-uninitialized"].level == "warning"
        assert "may hold uninitialized memory (torch.empty, torch.Tensor(n)): trident.weight;" in (
            lints["possibly-uninitialized"].message
        )
        assert "norm.weight, norm.bias" in lints["default-init"].message
        rows = {line.split()[1]: line for line in str(plan).splitlines() if line.startswith("│")}
        assert "not written: possibly uninitialized" in rows["trident.weight"]
        assert "PyTorch default (unchanged)" in rows["norm.weight"]

    def test_clean_model_has_no_uninitialized_warning(self) -> None:
        """Parameters of built-in modules that nothing writes are not 'uninitialized'."""
        plan = ins.compile_plan(nn.Sequential(nn.Linear(2, 2)), dict(type="Normal", layer="Conv2d"))
        assert "possibly-uninitialized" not in _lints(plan)

    def test_plan_table_never_cuts_paths(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Long parameter and rule paths come out whole on a narrow, non-terminal output."""
        monkeypatch.setenv("COLUMNS", "80")
        deep: nn.Module = nn.Linear(2, 2)
        for depth in range(12):
            deep = ins.Sequential(deep) if depth % 2 else nn.ModuleDict({"stage_name": deep})
        model = ins.Sequential(deep, init_cfg=dict(type="Normal", layer="Linear"))
        path = next(name for name, _ in model.named_parameters())
        assert len(path) > 80
        text = str(ins.compile_plan(model))
        assert any(line.startswith(f"│ {path} ") for line in text.splitlines())


class TestStrictInitWeights:
    def test_strict_context_applies_to_init_weights(self) -> None:
        """ins.strict() turns warning lints into errors for model.init_weights()."""
        model = ins.Sequential(nn.Linear(2, 2), init_cfg=dict(type="Normal", layer="Conv2d"))
        before = state_of(model)
        with ins.strict(), pytest.raises(ins.InitCfgError, match=r"\(strict: unmatched-layer\)"):
            model.init_weights()
        assert_bitwise_equal(before, state_of(model))
        assert not model.is_init
        model.init_weights()
        assert model.is_init
