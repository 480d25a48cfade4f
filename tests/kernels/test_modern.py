"""The initializers beyond MMEngine's eight (initschema/cfg/modern.py, initschema/kernels/)
and the options every built-in formula gained (splits, fan_axes, depth scaling,
TruncNormal's bounds in stds; initschema/cfg/formulas.py): their kernels and seeded
samplers against the formulas (tolerances of K standard errors for the sample size),
against torch.nn.init's bits, against JAX's formulas written out as numbers, and sharded
against the whole."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import pytest
import torch
from torch import Tensor, nn

import initschema as ins
from initschema.kernels.builtin import draws_nothing
from initschema.sharding.streams import elementwise, fill_box

K = 6.0
"""Standard errors a measured moment may be off (about one chance in 10⁹ per check)."""

MODES = ["faithful", "seeded"]


def check_moments(values: Tensor, mean: float, std: float) -> None:
    """Sample mean and std within K standard errors of ``mean`` and ``std`` (the normal's
    errors: uniform and truncated normals have lighter tails, so smaller ones)."""
    flat = values.detach().double().flatten()
    n = flat.numel()
    assert abs(flat.mean().item() - mean) <= K * std / math.sqrt(n), (flat.mean(), mean)
    assert abs(flat.std().item() - std) <= K * std / math.sqrt(2 * (n - 1)), (flat.std(), std)


def absmax(values: Tensor) -> float:
    return float(values.detach().abs().max())


def run(model: nn.Module, cfg: Any, mode: str, seed: int = 0) -> ins.InitPlan:
    """Compile ``cfg`` for ``model`` and execute it: faithful from the global RNG seeded
    with ``seed``, or seeded with ``seed``."""
    plan = ins.compile_plan(model, cfg)
    if mode == "faithful":
        torch.manual_seed(seed)
        plan.execute()
    else:
        plan.execute(seed=seed)
    return plan


def compile_error(model: nn.Module, cfg: Any) -> str:
    """The message of the InitCfgError compiling ``cfg`` for ``model`` raises."""
    with pytest.raises(ins.InitCfgError) as caught:
        ins.compile_plan(model, cfg)
    return str(caught.value)


class Experts(nn.Module):
    """Grouped experts laid out [E, in, out] (not torch's [out, in])."""

    def __init__(self, experts: int = 4, d_in: int = 64, d_out: int = 256) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(experts, d_in, d_out))


class Block(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.proj = nn.Linear(d, d)


class Stack(nn.Module):
    """Blocks with a layer index in their paths (blocks.0.proj, …), and maybe a head."""

    def __init__(self, depth: int = 4, d: int = 256, head: bool = False) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(Block(d) for _ in range(depth))
        if head:
            self.head = nn.Linear(d, 8)


class TestModels:
    """The typed models: registration, ranges, messages, round trips."""

    NEW: ClassVar[dict[str, dict[str, Any]]] = {
        "Zeros": {},
        "Ones": {},
        "Orthogonal": {"gain": 2.0},
        "Dirac": {"groups": 2},
        "Eye": {},
        "VarianceScaling": {"scale": 2.0, "mode": "fan_avg", "distribution": "uniform"},
        "LecunNormal": {},
        "LecunUniform": {},
        "SmallInit": {"d": 512},
        "WangInit": {"d": 512, "n_layers": 8},
    }

    @pytest.mark.parametrize("name", NEW)
    def test_round_trip(self, name: str) -> None:
        """Each new type parses, and its to_cfg parses back to the same rule."""
        (rule,) = ins.parse_init_cfg({"type": name, "layer": "Linear", **self.NEW[name]})
        assert type(rule.init).type_name == name
        (again,) = ins.parse_init_cfg(rule.init.to_cfg())
        assert again.init == rule.init

    def test_exported(self) -> None:
        """Each new class is importable from the package under the registered name's class."""
        for name in self.NEW:
            cls = ins.WEIGHT_INITIALIZERS.get(name)
            assert getattr(ins, cls.__name__) is cls
            assert cls.__doc__ and len(cls.__doc__) > 60  # the formula and its source

    def test_options_round_trip(self) -> None:
        """splits, fan_axes, depth scaling and bounds survive to_cfg and parse."""
        for cfg in [
            {"type": "Xavier", "splits": [4, 4, 4], "split_dim": 1},
            {"type": "Kaiming", "fan_axes": {"in": 1, "out": 2, "batch": [0]}},
            {"type": "Normal", "std": 0.02, "layer_id_regex": r"blocks\.(\d+)\."},
            {"type": "TruncNormal", "std": 0.02, "a": -3, "b": 3, "bounds": "std", "n_layers": 4},
        ]:
            (rule,) = ins.parse_init_cfg(cfg)
            (again,) = ins.parse_init_cfg(rule.init.to_cfg())
            assert again.init == rule.init

    @pytest.mark.parametrize(
        ("cfg", "message"),
        [
            ({"type": "Orthogonal", "gain": -1}, "init_cfg.gain: gain should be greater"),
            ({"type": "Dirac", "groups": 0}, "init_cfg.groups: groups should be greater"),
            ({"type": "Dirac", "groups": 1.5}, "init_cfg.groups: groups must be an integer"),
            ({"type": "VarianceScaling", "scale": 0}, "init_cfg.scale: scale should be greater"),
            (
                {"type": "VarianceScaling", "mode": "fan_sum"},
                "'fan_sum' is not a valid mode; expected one of fan_in, fan_out, fan_avg, "
                "fan_geo_avg",
            ),
            (
                {"type": "VarianceScaling", "distribution": "truncnorm"},
                "expected one of truncated_normal, normal, uniform",
            ),
            ({"type": "SmallInit"}, "SmallInit requires 'd'"),
            ({"type": "WangInit", "d": 8}, "WangInit requires 'n_layers'"),
            ({"type": "WangInit", "d": 8, "n_layers": True}, "n_layers must be an integer"),
            ({"type": "Normal", "splits": 5}, "splits must be a list of piece sizes"),
            (
                {"type": "Normal", "splits": [4, 0]},
                "init_cfg.splits[1]: splits should be greater than or equal to 1",
            ),
            ({"type": "Normal", "split_dim": 1}, "split_dim=1 without splits cuts nothing"),
            ({"type": "Kaiming", "fan_axes": {"in": 1, "outt": 2}}, "unknown keys ['outt']"),
            ({"type": "Kaiming", "fan_axes": [1, 2]}, "fan_axes must be a mapping like"),
            ({"type": "Xavier", "fan_axes": {"in": "x", "out": 0}}, "fan_axes.in: "),
            ({"type": "Normal", "layer_id_regex": r"blocks\.\d+"}, "has 0 groups; it needs"),
            ({"type": "Normal", "layer_id_regex": r"(a)(\d+)"}, "has 2 groups"),
            ({"type": "Normal", "layer_id_regex": "("}, "is not a regular expression"),
            (
                {"type": "Normal", "layer_id_regex": r"(\d+)", "n_layers": 2},
                "takes layer_id_regex (std/√(2·(layer_id+1))) or n_layers",
            ),
            ({"type": "TruncNormal", "n_layers": 0}, "n_layers should be greater"),
            ({"type": "TruncNormal", "bounds": "sigma"}, "expected one of absolute, std"),
        ],
    )
    def test_rejected(self, cfg: dict[str, Any], message: str) -> None:
        """Bad arguments fail when the config is parsed, naming the field and the fix."""
        with pytest.raises(ins.InitCfgError) as caught:
            ins.parse_init_cfg(cfg)
        assert message in str(caught.value)

    def test_describe_shows_options_only_when_set(self) -> None:
        """The plan shows splits, fan_axes, depth and bounds when set, and MMEngine's
        initializers exactly as before when not."""
        assert ins.KaimingInit().describe() == (
            "Kaiming(a=0, mode='fan_out', nonlinearity='relu', distribution='normal')"
        )
        kaiming = ins.KaimingInit(fan_axes={"in": 1, "out": 2, "batch": [0]}, splits=[2, 2])
        assert kaiming.describe().endswith("splits=[2, 2], fan_axes={in: 1, out: 2, batch: [0]})")
        trunc = ins.TruncNormalInit(std=0.02, a=-3, b=3, bounds="std")
        assert trunc.describe() == "TruncNormal(mean=0, std=0.02, a=-3, b=3, bounds='std')"


class TestConstants:
    """Zeros and Ones: exact, in both modes, and drawing nothing."""

    @pytest.mark.parametrize("mode", MODES)
    def test_values(self, mode: str) -> None:
        """Weights are 0 or 1 exactly, biases the rule's bias."""
        model = nn.Sequential(nn.Linear(300, 300), nn.Linear(300, 300))
        run(
            model,
            [
                dict(type="Zeros", override=dict(name="0")),
                dict(type="Ones", bias=0.5, override=dict(name="1")),
            ],
            mode,
        )
        assert bool((model[0].weight == 0).all()) and bool((model[1].weight == 1).all())
        assert bool((model[1].bias == 0.5).all())
        assert draws_nothing(ins.ZerosInit(), "weight") and elementwise(ins.OnesInit())


class TestOrthogonal:
    """Saxe et al.: WᵀW = gain²·I, torch's bits in faithful mode."""

    @pytest.mark.parametrize("shape", [(96, 48), (48, 96), (16, 4, 3, 3)])
    def test_bitwise_torch(self, shape: tuple[int, ...]) -> None:
        """Faithful: the same bits as torch.nn.init.orthogonal_ from the same seed."""
        torch.manual_seed(3)
        expected = nn.init.orthogonal_(torch.empty(shape), gain=1.5)
        torch.manual_seed(3)
        got = torch.empty(shape)
        ins.OrthogonalInit(gain=1.5).init_weight(got)
        assert torch.equal(got, expected)

    @pytest.mark.parametrize("mode", MODES)
    @pytest.mark.parametrize(("d_in", "d_out"), [(128, 256), (256, 128)])
    def test_orthogonal(self, mode: str, d_in: int, d_out: int) -> None:
        """WᵀW = gain²·I (tall) or WWᵀ = gain²·I (wide), to float32's precision."""
        model = nn.Sequential(nn.Linear(d_in, d_out))
        run(model, dict(type="Orthogonal", gain=2.0, layer="Linear"), mode)
        w = model[0].weight.double()
        gram = w.T @ w if d_out >= d_in else w @ w.T
        eye = torch.eye(gram.shape[0], dtype=torch.float64)
        assert torch.allclose(gram, 4.0 * eye, atol=1e-4)
        assert not elementwise(ins.OrthogonalInit())

    def test_low_precision(self) -> None:
        """A bfloat16 weight (which torch's QR cannot take) gets the float32 matrix rounded."""
        weight = torch.empty(64, 32, dtype=torch.bfloat16)
        torch.manual_seed(0)
        ins.OrthogonalInit().init_weight(weight)
        torch.manual_seed(0)
        assert torch.equal(weight, nn.init.orthogonal_(torch.empty(64, 32)).bfloat16())


class TestDiracEye:
    """Identity-preserving initializers: torch's bits, identity on a forward pass."""

    @pytest.mark.parametrize("mode", MODES)
    @pytest.mark.parametrize("conv", [nn.Conv1d, nn.Conv2d, nn.Conv3d])
    def test_dirac_is_identity(self, mode: str, conv: type[nn.Module]) -> None:
        """A Dirac conv with zero bias returns its input, and equals torch's dirac_."""
        model = nn.Sequential(conv(6, 6, 3, padding=1))
        run(model, dict(type="Dirac", layer=conv.__name__), mode)
        x = torch.randn(2, 6, *([5] * (model[0].weight.dim() - 2)))
        assert torch.equal(model(x), x)
        assert torch.equal(model[0].weight, nn.init.dirac_(torch.empty_like(model[0].weight)))

    def test_dirac_groups(self) -> None:
        """groups: each group passes its channels through, as torch.nn.init.dirac_."""
        model = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1, groups=2))
        run(model, dict(type="Dirac", groups=2, layer="Conv2d"), "faithful")
        expected = nn.init.dirac_(torch.empty(8, 2, 3, 3), groups=2)
        assert torch.equal(model[0].weight, expected)

    @pytest.mark.parametrize("mode", MODES)
    def test_eye(self, mode: str) -> None:
        """An Eye Linear passes its first min(in, out) inputs through; torch's eye_ bits."""
        model = nn.Sequential(nn.Linear(12, 8))
        run(model, dict(type="Eye", layer="Linear"), mode)
        x = torch.randn(3, 12)
        assert torch.equal(model(x), x[:, :8])
        assert torch.equal(model[0].weight, nn.init.eye_(torch.empty(8, 12)))
        assert not elementwise(ins.EyeInit()) and not elementwise(ins.DiracInit())


class TestVarianceScaling:
    """JAX's variance_scaling (and LeCun's): facts about its samples, as numbers."""

    TRUNCATED_STD = 0.87962566103423978

    def test_truncation_constant(self) -> None:
        """0.8796… is the std of N(0, 1) truncated to [-2, 2]."""
        pdf = math.exp(-2) / math.sqrt(2 * math.pi)
        assert math.sqrt(1 - 4 * pdf / math.erf(2 / math.sqrt(2))) == pytest.approx(
            self.TRUNCATED_STD, rel=1e-15
        )

    @pytest.mark.parametrize("mode", MODES)
    @pytest.mark.parametrize("kind", ["LecunNormal", "VarianceScaling"])
    def test_lecun_normal(self, mode: str, kind: str) -> None:
        """fan_in 256, scale 1, truncated_normal: samples' std 1/16, all within
        ±2·(1/16)/0.87962566 = ±0.1421059, the largest near that bound."""
        model = nn.Sequential(nn.Linear(256, 512))
        run(model, dict(type=kind, layer="Linear"), mode)
        w = model[0].weight
        check_moments(w, 0.0, 1 / 16)
        assert absmax(w) <= 0.1421059043 * (1 + 1e-6)
        assert absmax(w) > 0.95 * 0.1421059043

    def test_lecun_normal_is_variance_scaling(self) -> None:
        """LecunNormal and LecunUniform are VarianceScaling(1, fan_in, …), bit for bit."""
        for lecun, distribution in [
            ("LecunNormal", "truncated_normal"),
            ("LecunUniform", "uniform"),
        ]:
            a, b = nn.Linear(64, 32), nn.Linear(64, 32)
            for mode in MODES:
                run(a, dict(type=lecun, layer="Linear"), mode)
                run(
                    b, dict(type="VarianceScaling", distribution=distribution, layer="Linear"), mode
                )
                assert torch.equal(a.weight, b.weight)

    @pytest.mark.parametrize("mode", MODES)
    @pytest.mark.parametrize(
        ("scaling", "std"),
        [
            ({"mode": "fan_in", "distribution": "normal"}, 1 / 16),
            ({"mode": "fan_out", "distribution": "normal", "scale": 2.0}, math.sqrt(2 / 64)),
            ({"mode": "fan_avg", "distribution": "normal"}, math.sqrt(1 / 160)),
            ({"mode": "fan_geo_avg", "distribution": "normal"}, math.sqrt(1 / 128)),
            ({"mode": "fan_avg", "distribution": "truncated_normal"}, math.sqrt(1 / 160)),
        ],
    )
    def test_modes(self, mode: str, scaling: dict[str, Any], std: float) -> None:
        """[out=64, in=256]: n = 256, 64, (256+64)/2 = 160, √(256·64) = 128."""
        model = nn.Sequential(nn.Linear(256, 64), nn.Linear(256, 64))
        run(model, dict(type="VarianceScaling", layer="Linear", **scaling), mode)
        check_moments(torch.cat([model[0].weight, model[1].weight]), 0.0, std)

    @pytest.mark.parametrize("mode", MODES)
    def test_uniform(self, mode: str) -> None:
        """LecunUniform at fan_in 256: U(±√(3/256)) = U(±0.10825318), std 1/16."""
        model = nn.Sequential(nn.Linear(256, 512))
        run(model, dict(type="LecunUniform", layer="Linear"), mode)
        w = model[0].weight
        check_moments(w, 0.0, 1 / 16)
        assert 0.1080 < absmax(w) <= 0.10825318


class TestFanAxes:
    """fan_axes: fans of tensors not laid out [out, in, *kernel]."""

    @pytest.mark.parametrize("mode", MODES)
    @pytest.mark.parametrize(
        ("cfg", "std"),
        [
            ({"type": "Kaiming", "mode": "fan_in"}, math.sqrt(2 / 64)),
            ({"type": "Kaiming", "mode": "fan_out"}, math.sqrt(2 / 256)),
            ({"type": "Xavier"}, math.sqrt(2 / (64 + 256))),
            ({"type": "Caffe2Xavier"}, math.sqrt(1 / 64)),
            ({"type": "LecunNormal"}, 1 / 8),
            ({"type": "VarianceScaling", "mode": "fan_out"}, 1 / 16),
        ],
    )
    def test_experts(self, mode: str, cfg: dict[str, Any], std: float) -> None:
        """Experts [E=4, in=64, out=256] with {in: 1, out: 2, batch: [0]}: fan_in 64,
        fan_out 256 (the expert axis in neither)."""
        model = nn.Sequential(Experts())
        axes = {"in": 1, "out": 2, "batch": [0]}
        run(model, {**cfg, "layer": "Experts", "fan_axes": axes}, mode)
        check_moments(model[0].weight, 0.0, std)

    def test_receptive_field(self) -> None:
        """Axes neither in, out nor batch multiply both fans (JAX's receptive field)."""
        init = ins.KaimingInit(fan_axes={"in": -2, "out": -1})
        assert init.fans((3, 3, 16, 32)) == (9 * 16, 9 * 32)  # HWIO, as Flax lays out a conv
        assert ins.KaimingInit().fans((32, 16, 3, 3)) == (16 * 9, 32 * 9)

    @pytest.mark.parametrize(
        "cfg",
        [
            {"type": "Kaiming", "mode": "fan_in", "distribution": "uniform"},
            {"type": "Kaiming", "nonlinearity": "leaky_relu", "a": 0.1},
            {"type": "Xavier", "distribution": "uniform", "gain": 2.0},
            {"type": "Xavier"},
            {"type": "Caffe2Xavier"},
        ],
    )
    def test_default_layout_bitwise(self, cfg: dict[str, Any]) -> None:
        """fan_axes naming torch's own layout ({in: 1, out: 0}) gives torch's bits."""
        a, b = nn.Conv2d(8, 16, 3), nn.Conv2d(8, 16, 3)
        run(a, {**cfg, "layer": "Conv2d"}, "faithful")
        run(b, {**cfg, "layer": "Conv2d", "fan_axes": {"in": 1, "out": 0}}, "faithful")
        assert torch.equal(a.weight, b.weight)


class TestSplits:
    """splits: a fused tensor written piece by piece, fans from each piece."""

    @pytest.mark.parametrize("mode", MODES)
    def test_qkv(self, mode: str) -> None:
        """Xavier on a fused QKV [3·128, 128] with splits [128]·3: each piece's std is
        √(2/(128+128)), not the whole tensor's √(2/(384+128))."""
        model = nn.Sequential(nn.Linear(128, 384))
        run(model, dict(type="Xavier", layer="Linear", splits=[128, 128, 128]), mode)
        for piece in model[0].weight.split(128):
            check_moments(piece, 0.0, math.sqrt(2 / 256))

    @pytest.mark.parametrize("mode", MODES)
    def test_uneven_along_dim_1(self, mode: str) -> None:
        """Kaiming fan_out along split_dim 1: pieces [out=256, 192] and [256, 64] have fan_out
        256 each (√(2/256)); fan_in mode sees their own widths."""
        model = nn.Sequential(nn.Linear(256, 256))
        run(
            model,
            dict(type="Kaiming", mode="fan_in", layer="Linear", splits=[192, 64], split_dim=1),
            mode,
        )
        left, right = model[0].weight.split([192, 64], dim=1)
        check_moments(left, 0.0, math.sqrt(2 / 192))
        check_moments(right, 0.0, math.sqrt(2 / 64))

    def test_faithful_bits(self) -> None:
        """Faithful: each piece is torch's formula on that piece, in order, from the global
        RNG; Orthogonal pieces are orthogonal each."""
        torch.manual_seed(5)
        expected = torch.empty(96, 32)
        for piece in expected.split([64, 32]):
            nn.init.orthogonal_(piece)
        model = nn.Sequential(nn.Linear(32, 96))
        run(model, dict(type="Orthogonal", layer="Linear", splits=[64, 32]), "faithful", 5)
        assert torch.equal(model[0].weight, expected)
        assert not elementwise(ins.NormalInit(splits=[1, 1]))

    @pytest.mark.parametrize("mode", MODES)
    def test_params(self, mode: str) -> None:
        """A raw fused parameter selected by ``params`` is split too; a raw experts tensor
        takes fan_axes."""
        model = Holder((384, 128))
        model.experts = nn.Parameter(torch.zeros(4, 64, 256))
        rules = [
            dict(type="Xavier", params=["weight"], splits=[128, 128, 128]),
            dict(
                type="LecunNormal", params=["experts"], fan_axes={"in": 1, "out": 2, "batch": [0]}
            ),
        ]
        run(model, rules, mode)
        for piece in model.weight.split(128):
            check_moments(piece, 0.0, math.sqrt(2 / 256))
        check_moments(model.experts, 0.0, 1 / 8)

    def test_plan_says_whole_tensor(self) -> None:
        """The plan JSON says which writes seeded mode draws elementwise."""
        model = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 8))
        plan = ins.compile_plan(
            model,
            [
                dict(type="LecunNormal", override=dict(name="0")),
                dict(type="Normal", splits=[4, 4], override=dict(name="1")),
                dict(type="Orthogonal", override=dict(name="2")),
            ],
        )
        seeded = [action.get("seeded") for action in plan.to_dict()["actions"]]
        assert seeded == ["elementwise", "whole tensor", "whole tensor"]


class TestTruncNormalStdUnits:
    """bounds: std — timm's trunc_normal_tf_ (TensorFlow's, JAX's)."""

    def test_faithful_is_trunc_normal_tf(self) -> None:
        """Faithful: timm's trunc_normal_tf_ written out: N(0, 1) on [a, b] by inverse CDF,
        then ·std + mean."""
        torch.manual_seed(1)
        expected = ins.trunc_normal_(torch.empty(64, 64), 0.0, 1.0, -3.0, 3.0)
        expected.mul_(0.02).add_(0.5)
        torch.manual_seed(1)
        got = torch.empty(64, 64)
        ins.TruncNormalInit(mean=0.5, std=0.02, a=-3, b=3, bounds="std").init_weight(got)
        assert torch.equal(got, expected)

    @pytest.mark.parametrize("mode", MODES)
    def test_moments_and_bounds(self, mode: str) -> None:
        """±3σ at std 0.02 (OLMo-2): within ±0.06, with std 0.02·0.98658… (the std of
        N(0, 1) truncated to ±3)."""
        model = nn.Sequential(nn.Linear(256, 512))
        run(
            model, dict(type="TruncNormal", std=0.02, a=-3, b=3, bounds="std", layer="Linear"), mode
        )
        w = model[0].weight
        pdf = math.exp(-4.5) / math.sqrt(2 * math.pi)
        truncated = math.sqrt(1 - 6 * pdf / math.erf(3 / math.sqrt(2)))
        check_moments(w, 0.0, 0.02 * truncated)
        assert absmax(w) <= 0.06 * (1 + 1e-6)
        assert absmax(w) > 0.055


class TestDepthScaling:
    """std/√(2·(layer_id+1)) from a path (torchtitan) and std/√(2·n_layers) (GPT-2)."""

    def test_for_module(self) -> None:
        """for_module resolves the std and says where it came from."""
        init = ins.NormalInit(std=0.02, layer_id_regex=r"blocks\.(\d+)\.")
        resolved = init.for_module("blocks.3.attn.proj")
        assert resolved.std == pytest.approx(0.02 / math.sqrt(8))
        assert resolved.describe() == "Normal(mean=0, std=0.02/√(2·(3+1))=0.00707107, layer_id=3)"
        assert init.for_module("blocks.3").std == resolved.std  # the path ends at the block
        gpt2 = ins.NormalInit(std=0.02, n_layers=12).for_module("h.0.mlp.c_proj")
        assert gpt2.describe() == "Normal(mean=0, std=0.02/√(2·12)=0.00408248)"

    @pytest.mark.parametrize("mode", MODES)
    def test_layer_id(self, mode: str) -> None:
        """Each block's projection gets 0.02/√(2·(i+1)) (TruncNormal, ±2 absolute: torchtitan's)."""
        model = Stack()
        run(
            model,
            dict(type="TruncNormal", std=0.02, layer_id_regex=r"blocks\.(\d+)\.", layer="Linear"),
            mode,
        )
        for i, block in enumerate(model.blocks):
            check_moments(block.proj.weight, 0.0, 0.02 / math.sqrt(2 * (i + 1)))

    @pytest.mark.parametrize("mode", MODES)
    def test_n_layers(self, mode: str) -> None:
        """Every projection gets 0.02/√(2·4); bounds in stds scale with it."""
        model = Stack()
        run(
            model,
            dict(type="TruncNormal", std=0.02, n_layers=4, a=-2, b=2, bounds="std", layer="Linear"),
            mode,
        )
        weights = torch.cat([block.proj.weight for block in model.blocks])
        std = 0.02 / math.sqrt(8)
        check_moments(weights, 0.0, std * 0.87962566103423978)
        assert absmax(weights) <= 2 * std * (1 + 1e-6)

    def test_unmatched_path_is_a_compile_error(self) -> None:
        """A written module whose path the regex does not match fails the compile, naming
        it, before anything is written."""
        model = Stack(head=True)
        before = model.head.weight.clone()
        message = compile_error(
            model, dict(type="Normal", std=0.02, layer="Linear", layer_id_regex=r"blocks\.(\d+)\.")
        )
        assert "at module 'head'" in message
        assert r"layer_id_regex 'blocks\.(\d+)\.' does not match the module path 'head'" in message
        assert torch.equal(model.head.weight, before)

    def test_unresolved_refuses_to_write(self) -> None:
        """Written outside a plan, a path-scaled std says how to resolve it."""
        init = ins.NormalInit(std=0.02, layer_id_regex=r"blocks\.(\d+)\.")
        with pytest.raises(ValueError, match="call for_module"):
            init.init_weight(torch.empty(4, 4))


class TestSmallWang:
    """SmallInit √(2/(5d)) and WangInit 2/(n_layers·√d)."""

    @pytest.mark.parametrize("mode", MODES)
    @pytest.mark.parametrize(
        ("cfg", "std"),
        [
            ({"type": "SmallInit", "d": 512}, 0.02795084971874737),
            ({"type": "WangInit", "d": 512, "n_layers": 8}, 0.011048543456039804),
        ],
    )
    def test_std(self, mode: str, cfg: dict[str, Any], std: float) -> None:
        """The samples' std is the formula's."""
        model = nn.Sequential(nn.Linear(512, 256))
        run(model, {**cfg, "layer": "Linear"}, mode)
        check_moments(model[0].weight, 0.0, std)


class TestCompileErrors:
    """Shapes a formula cannot write fail the compile, naming the module."""

    @pytest.mark.parametrize(
        ("model", "cfg", "messages"),
        [
            (
                nn.Sequential(nn.Conv2d(3, 3, 3)),
                {"type": "Eye", "layer": "Conv2d"},
                ["at module '0'", "Eye needs a 2-D weight, not shape (3, 3, 3, 3)"],
            ),
            (
                nn.Sequential(nn.Linear(3, 3)),
                {"type": "Dirac", "layer": "Linear"},
                ["at module '0'", "Dirac needs a convolution weight of 3, 4 or 5 dimensions"],
            ),
            (
                nn.Sequential(nn.Conv2d(4, 6, 3)),
                {"type": "Dirac", "groups": 4, "layer": "Conv2d"},
                ["groups=4 does not divide dimension 0 of shape (6, 4, 3, 3)"],
            ),
            (
                nn.Sequential(nn.LayerNorm(8)),
                {"type": "Orthogonal", "layer": "LayerNorm"},
                ["Orthogonal needs a tensor of 2 or more dimensions, not shape (8,)"],
            ),
            (
                nn.Sequential(nn.LayerNorm(8)),
                {"type": "LecunNormal", "layer": "LayerNorm"},
                ["LecunNormal needs fan-in/fan-out"],
            ),
            (
                nn.ModuleDict({"qkv": nn.Linear(8, 20)}),
                {"type": "Xavier", "splits": [8, 8, 8], "override": {"name": "qkv"}},
                [
                    "at module 'qkv'",
                    "splits [8, 8, 8] sum to 24, but dimension 0 of shape (20, 8) "
                    "has 20; make the pieces sum to 20",
                ],
            ),
            (
                nn.Sequential(nn.Linear(8, 8)),
                {"type": "Normal", "splits": [4, 4], "split_dim": 2, "layer": "Linear"},
                ["split_dim=2 is not a dimension of a tensor of shape (8, 8)"],
            ),
            (
                nn.Sequential(nn.Conv2d(4, 8, 3)),
                {"type": "Dirac", "groups": 2, "splits": [4, 3, 1], "layer": "Conv2d"},
                [
                    "groups=2 does not divide dimension 0 of shape (3, 4, 3, 3) (a piece of "
                    "(8, 4, 3, 3))"
                ],
            ),
            (
                nn.Sequential(Experts()),
                {"type": "Kaiming", "fan_axes": {"in": 1, "out": 3}, "layer": "Experts"},
                [
                    "at module '0'",
                    "fan_axes {in: 1, out: 3} name an axis a tensor of shape (4, 64, 256) lacks",
                ],
            ),
            (
                nn.Sequential(Experts()),
                {"type": "Kaiming", "fan_axes": {"in": 1, "out": -2}, "layer": "Experts"},
                ["name one axis of shape (4, 64, 256) twice"],
            ),
        ],
    )
    def test_message(self, model: nn.Module, cfg: dict[str, Any], messages: list[str]) -> None:
        """The compile error names the module and says what the shape lacks."""
        message = compile_error(model, cfg)
        for expected in messages:
            assert expected in message


class TestOverwrittenDraws:
    """Faithful mode: an overwritten write draws exactly what the full write draws, so
    the global RNG after the plan is MMEngine's."""

    @pytest.mark.parametrize(
        "cfg",
        [
            {"type": "Orthogonal"},
            {"type": "Orthogonal", "splits": [20, 10]},
            {"type": "Xavier", "splits": [10, 10, 10]},
            {"type": "Kaiming", "fan_axes": {"in": 0, "out": 1}},
            {"type": "VarianceScaling", "distribution": "normal"},
            {"type": "VarianceScaling", "distribution": "uniform"},
            {"type": "LecunNormal"},
            {"type": "LecunUniform"},
            {"type": "SmallInit", "d": 4},
            {"type": "WangInit", "d": 4, "n_layers": 2},
            {"type": "TruncNormal", "bounds": "std"},
            {"type": "Normal", "n_layers": 3},
            {"type": "Dirac"},
            {"type": "Eye"},
            {"type": "Zeros"},
        ],
    )
    def test_rng_advances_alike(self, cfg: dict[str, Any]) -> None:
        """The RNG state after [cfg, Constant over it] equals that after [cfg] alone."""
        shape = (30, 17, 3) if cfg["type"] == "Dirac" else (30, 17)
        rule = {**cfg, "layer": "Holder"}

        def state_after(rules: list[dict[str, Any]]) -> Tensor:
            torch.manual_seed(0)
            ins.compile_plan(Holder(shape), rules).execute()
            return torch.get_rng_state()

        overwritten = state_after([rule, {"type": "Constant", "val": 0, "layer": "Holder"}])
        assert torch.equal(overwritten, state_after([rule]))


class Holder(nn.Module):
    """A weight of any shape, and no bias."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(shape))


class TestSharded:
    """A shard computed alone equals the slice of the whole: whole-tensor initializers keep
    their slice, elementwise ones draw their tiles."""

    @pytest.mark.parametrize(
        ("init", "shape"),
        [
            (ins.OrthogonalInit(gain=1.5), (300, 200)),
            (ins.DiracInit(groups=2), (8, 6, 3, 3)),
            (ins.EyeInit(), (300, 200)),
            (ins.XavierInit(splits=[100, 100, 100]), (300, 200)),
            (ins.LecunNormalInit(), (300, 300)),
            (ins.TruncNormalInit(std=0.02, a=-3, b=3, bounds="std"), (300, 300)),
            (ins.KaimingInit(fan_axes={"in": 1, "out": 2, "batch": [0]}), (4, 100, 200)),
            (ins.OnesInit(), (300, 200)),
        ],
    )
    @pytest.mark.parametrize("dim", [0, 1])
    def test_shard_is_slice(self, init: ins.WeightInit, shape: tuple[int, ...], dim: int) -> None:
        """Rows (or columns) 2/3 of the way through, of a tensor, equal the whole's slice."""
        full = torch.empty(shape)
        whole_box = tuple((0, n) for n in shape)
        fill_box(init, "weight", full, shape, whole_box, 7, "model.w")
        start, length = shape[dim] // 3, shape[dim] // 3 + 1
        box = tuple((start, length) if d == dim else (0, n) for d, n in enumerate(shape))
        local = torch.full([length if d == dim else n for d, n in enumerate(shape)], math.nan)
        fill_box(init, "weight", local, shape, box, 7, "model.w")
        assert torch.equal(local, full.narrow(dim, start, length))

    def test_whole_equals_plain_seeded(self) -> None:
        """The whole box is what a plain (unsharded) seeded write gives."""
        model = nn.Sequential(nn.Linear(20, 30))
        run(model, dict(type="Orthogonal", layer="Linear"), "seeded", seed=7)
        full = torch.empty(30, 20)
        fill_box(ins.OrthogonalInit(), "weight", full, (30, 20), ((0, 30), (0, 20)), 7, "0.weight")
        assert torch.equal(model[0].weight, full)


class TestReport:
    """initschema report predicts what each new formula writes, and flags nothing."""

    def test_measured_as_predicted(self) -> None:
        """Every weight of a mixed model has an expected std, met within the report's
        tolerance (a wrong fan, depth or bound would be flagged)."""
        from initschema.diagnostics.stats import measure

        model = nn.ModuleDict(
            {
                "blocks": Stack(depth=2, d=128).blocks,
                "experts": Experts(),
                "rnn": nn.Linear(128, 256),
                "olmo": nn.Linear(128, 256),
                "jax": nn.Linear(256, 128),
                "small": nn.Linear(128, 128),
            }
        )
        rules = {
            "depth": dict(type="Normal", std=0.02, layer_id_regex=r"blocks\.(\d+)\.",
                          override=dict(name="blocks.*.proj")),
            "experts": dict(type="Kaiming", fan_axes={"in": 1, "out": 2, "batch": [0]},
                            override=dict(name="experts")),
            "rnn": dict(type="Orthogonal", gain=2.0, override=dict(name="rnn")),
            "olmo": dict(type="TruncNormal", std=0.02, a=-3, b=3, bounds="std",
                         override=dict(name="olmo")),
            "jax": dict(type="VarianceScaling", mode="fan_avg", override=dict(name="jax")),
            "small": dict(type="SmallInit", d=128, override=dict(name="small")),
        }  # fmt: skip
        plan = ins.compile_plan(model, rules)
        rows = {row.path: row for row in measure(plan, plan.execute(seed=0))}
        assert rows["blocks.1.proj.weight"].expected_std == pytest.approx(0.01)
        assert rows["experts.weight"].expected_std == pytest.approx(math.sqrt(2 / 256))
        assert rows["rnn.weight"].expected_std == pytest.approx(2 / 16)
        assert rows["jax.weight"].expected_std == pytest.approx(math.sqrt(1 / 192))
        weights = [row for path, row in rows.items() if path.endswith("weight")]
        assert all(row.expected_std for row in weights)
        assert [flag for row in rows.values() for flag in row.flags] == []
