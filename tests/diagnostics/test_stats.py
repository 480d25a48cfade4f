"""Statistics after initialization: each formula's prediction, honest tensors left alone,
wrong ones, NaN, uninitialized memory and ignored init_cfgs flagged."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import initschema as ins
import initschema.diagnostics._moments
import initschema.diagnostics.stats
from initschema.diagnostics.plot import MissingExtraError, plot
from initschema.diagnostics.stats import (
    Finding,
    TensorStats,
    expected_moments,
    findings,
    measure,
    render_stats,
)

# One Linear(256, 256) per initializer: 65,536 values each. fan_in = fan_out = 256.
RULES: dict[str, dict[str, Any]] = {
    "kaiming": dict(type="Kaiming", mode="fan_in"),
    "kaiming_uniform": dict(type="Kaiming", distribution="uniform", nonlinearity="tanh"),
    "xavier": dict(type="Xavier", gain=2),
    "xavier_uniform": dict(type="Xavier", distribution="uniform"),
    "normal": dict(type="Normal", mean=0.5, std=0.02),
    "trunc": dict(type="TruncNormal", std=1, a=-1, b=1.5),
    "uniform": dict(type="Uniform", a=-1, b=3),
    "constant": dict(type="Constant", val=0.25, bias=-1),
    "caffe2": dict(type="Caffe2Xavier", bias_prob=0.01),
}


def _model() -> nn.Module:
    return nn.ModuleDict({name: nn.Linear(256, 256) for name in RULES})


def _cfg() -> list[dict[str, Any]]:
    return [dict(rule, override=dict(name=name)) for name, rule in RULES.items()]


def _run(model: nn.Module, init_cfg: Any = None, seed: int | None = 0) -> Any:
    plan = ins.compile_plan(model, init_cfg, log=False)
    report = plan.execute(seed=seed)
    return plan, report


def _measured(model: nn.Module, init_cfg: Any = None, **kwargs: Any) -> dict[str, TensorStats]:
    plan, report = _run(model, init_cfg, **kwargs)
    return {row.path: row for row in measure(plan, report)}


def _kinds(row: TensorStats) -> list[str]:
    return [flag.kind for flag in row.flags]


class TestExpectedMoments:
    def test_kaiming(self) -> None:
        """Kaiming: gain/√fan, fan from the chosen mode, gain from the nonlinearity and a."""
        relu = ins.KaimingInit()  # fan_out of 32×16×3×3 = 288
        assert expected_moments(relu, "weight", (32, 16, 3, 3)) == pytest.approx(
            (0, math.sqrt(2) / math.sqrt(288))
        )
        leaky = ins.KaimingInit(a=0.1, mode="fan_in", nonlinearity="leaky_relu")
        assert expected_moments(leaky, "weight", (64, 50)) == pytest.approx(
            (0, math.sqrt(2 / (1 + 0.1**2)) / math.sqrt(50))
        )
        tanh = ins.KaimingInit(nonlinearity="tanh", distribution="uniform")
        assert expected_moments(tanh, "weight", (64, 50)) == pytest.approx((0, 5 / 3 / 8))

    def test_xavier(self) -> None:
        """Xavier: gain·√(2/(fan_in+fan_out)), the receptive field in both fans."""
        init = ins.XavierInit(gain=2, distribution="uniform")
        assert expected_moments(init, "weight", (30, 20, 5)) == pytest.approx(
            (0, 2 * math.sqrt(2 / (100 + 150)))
        )

    def test_caffe2_xavier(self) -> None:
        """Caffe2Xavier: Kaiming with a=1, leaky_relu (gain 1), fan_in."""
        assert expected_moments(ins.Caffe2XavierInit(), "weight", (8, 40)) == pytest.approx(
            (0, 1 / math.sqrt(40))
        )

    def test_normal_and_uniform(self) -> None:
        """Normal: its mean and std; Uniform(a, b): (a+b)/2 and (b−a)/√12."""
        assert expected_moments(ins.NormalInit(mean=0.5, std=0.3), "weight", (4,)) == (0.5, 0.3)
        assert expected_moments(ins.UniformInit(a=-1, b=3), "weight", (4,)) == pytest.approx(
            (1, 4 / math.sqrt(12))
        )

    def test_trunc_normal(self) -> None:
        """TruncNormal: the moments of the truncated distribution, not of N(mean, std²)."""
        # [0, 10] of N(0, 1) is the half-normal: mean √(2/π), variance 1 − 2/π.
        half = ins.TruncNormalInit(std=1, a=0, b=10)
        assert expected_moments(half, "weight", (4,)) == pytest.approx(
            (math.sqrt(2 / math.pi), math.sqrt(1 - 2 / math.pi))
        )
        # [-1, 1]: variance 1 − 2φ(1)/(Φ(1) − Φ(−1)), φ(1) = e^(−1/2)/√(2π).
        phi = math.exp(-0.5) / math.sqrt(2 * math.pi)
        mass = math.erf(1 / math.sqrt(2))
        unit = ins.TruncNormalInit(std=1, a=-1, b=1)
        assert expected_moments(unit, "weight", (4,)) == pytest.approx(
            (0, math.sqrt(1 - 2 * phi / mass))
        )
        wide = ins.TruncNormalInit(std=0.02)  # bounds at ±100 std: plain N(0, 0.02²)
        assert expected_moments(wide, "weight", (4,)) == pytest.approx((0, 0.02))

    def test_constants(self) -> None:
        """Constant and every bias: the value itself, std 0 (bias_prob: −log((1−p)/p))."""
        assert expected_moments(ins.ConstantInit(val=3), "weight", (4, 4)) == (3, 0)
        assert expected_moments(ins.KaimingInit(bias=2), "bias", (4,)) == (2, 0)
        prior = expected_moments(ins.NormalInit(bias_prob=0.01), "bias", (4,))
        assert prior == pytest.approx((-math.log(99), 0))

    def test_user_initializer(self) -> None:
        """A user initializer's own init_weight has no formula to predict."""

        @ins.register_initializer("TestOrthogonal")
        class OrthogonalInit(ins.WeightInit):
            def init_weight(self, weight: torch.Tensor, generator: Any = None) -> None:
                nn.init.orthogonal_(weight, generator=generator)

        assert expected_moments(OrthogonalInit(), "weight", (4, 4)) is None


class TestMeasure:
    @pytest.mark.parametrize("seed", [0, 1, 2, None])
    def test_honest_tensors_are_never_flagged(self, seed: int | None) -> None:
        """Every built-in initializer, seeded and faithful (seed None), flags nothing."""
        torch.manual_seed(7)
        plan, report = _run(_model(), _cfg(), seed=seed)
        stats = measure(plan, report)
        assert findings(plan, stats) == ()
        assert all(row.expected_std is not None for row in stats)

    def test_measured_values(self) -> None:
        """Mean, std (n−1), min and max are the tensor's own; expectations sit beside them."""
        rows = _measured(_model(), _cfg())
        weight = dict(_model().named_parameters())["uniform.weight"]  # only for its shape
        row = rows["uniform.weight"]
        assert row.shape == tuple(weight.shape) == (256, 256)
        assert (row.expected_mean, row.expected_std) == pytest.approx((1, 4 / math.sqrt(12)))
        assert row.family == "Uniform" and row.writer == "write"
        assert rows["constant.weight"].family == "constant"
        assert (rows["constant.bias"].min, rows["constant.bias"].max) == (-1, -1)

    def test_measured_against_torch(self) -> None:
        """The measured moments agree with torch's own reductions of the tensor."""
        model = _model()
        rows = _measured(model, _cfg())
        tensor = model["normal"].weight.detach().double()
        row = rows["normal.weight"]
        assert row.mean == pytest.approx(float(tensor.mean()), rel=1e-9)
        assert row.std == pytest.approx(float(tensor.std()), rel=1e-9)
        assert (row.min, row.max) == (float(tensor.min()), float(tensor.max()))

    def test_chunked_moments(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Big tensors are measured in chunks; the moments are those of the whole."""
        monkeypatch.setattr(initschema.diagnostics._moments, "_CHUNK", 1000)
        model = _model()
        rows = _measured(model, _cfg())
        tensor = model["uniform"].weight.detach().double()
        row = rows["uniform.weight"]
        assert row.mean == pytest.approx(float(tensor.mean()), rel=1e-9)
        assert row.std == pytest.approx(float(tensor.std()), rel=1e-9)
        assert (row.min, row.max) == (float(tensor.min()), float(tensor.max()))
        assert row.flags == ()

    def test_half_precision(self) -> None:
        """float16 normals reach its subnormals (below 6e-5) honestly: not flagged."""
        model = nn.Linear(256, 256).half()
        plan, report = _run(model, dict(type="Normal", layer="Linear", std=0.02))
        assert (model.weight.abs() < 6.1e-5).any()
        assert findings(plan, measure(plan, report)) == ()

    def test_wrong_std_is_flagged(self) -> None:
        """A weight scaled 10× after initialization: a std finding naming both numbers."""
        model = _model()
        plan, report = _run(model, _cfg())
        with torch.no_grad():
            model["kaiming"].weight.mul_(10)
        rows = {row.path: row for row in measure(plan, report)}
        assert _kinds(rows["kaiming.weight"]) == ["std"]
        message = rows["kaiming.weight"].flags[0].message
        expected = math.sqrt(2) / math.sqrt(256)
        assert f"the {expected:.4g} that Kaiming(" in message
        assert "check the rule's arguments" in message

    def test_wrong_mean_is_flagged(self) -> None:
        """A weight shifted by one std: a mean finding, not a std one."""
        model = _model()
        plan, report = _run(model, _cfg())
        with torch.no_grad():
            model["normal"].weight.add_(0.02)
        rows = {row.path: row for row in measure(plan, report)}
        assert _kinds(rows["normal.weight"]) == ["mean"]

    def test_changed_constant_is_flagged(self) -> None:
        """A constant is checked exactly, even for a tensor of one value."""
        model = nn.Linear(1, 1)
        plan, report = _run(model, dict(type="Constant", layer="Linear", val=1, bias=0.5))
        with torch.no_grad():
            model.bias.add_(1e-6)
        rows = {row.path: row for row in measure(plan, report)}
        assert _kinds(rows["bias"]) == ["constant"]
        assert _kinds(rows["weight"]) == []

    def test_small_tensors_get_no_statistical_check(self) -> None:
        """Below 30 values a std 10× off is not flagged: too few values to tell."""
        model = nn.Linear(5, 5)
        plan, report = _run(model, dict(type="Normal", std=0.02))
        with torch.no_grad():
            model.weight.mul_(10)
        assert findings(plan, measure(plan, report)) == ()

    def test_nan_is_flagged(self) -> None:
        """NaN and inf are counted; the moments are those of the finite values."""
        model = _model()
        plan, report = _run(model, _cfg())
        with torch.no_grad():
            model["normal"].weight[0, :2] = torch.tensor([math.nan, math.inf])
        rows = {row.path: row for row in measure(plan, report)}
        row = rows["normal.weight"]
        assert _kinds(row) == ["non-finite"]
        assert row.flags[0].message.startswith("1 NaN and 1 infinite values of 65536")
        assert row.mean == pytest.approx(0.5, abs=0.001)

    def test_empty_parameter_is_possibly_uninitialized(self) -> None:
        """A parameter of a user module with no reset_parameters that nothing writes is
        flagged; a torch module's unwritten tensors are not."""

        class Scale(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                # Zeros, not torch.empty: raw memory may hold NaN, a second finding.
                self.gamma = nn.Parameter(torch.zeros(64))

        rows = _measured(
            nn.Sequential(nn.Linear(8, 8), Scale()), dict(type="Normal", layer="Linear")
        )
        assert _kinds(rows["1.gamma"]) == ["uninitialized"]
        assert rows["1.gamma"].initializer == "not written"
        assert "Scale is no torch module and has no reset_parameters" in str(
            rows["1.gamma"].flags[0]
        )
        assert rows["0.weight"].flags == ()

    def test_garbage_values_are_possibly_uninitialized(self) -> None:
        """Denormal or astronomically large values in a tensor look like raw memory."""
        model = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 8))
        plan, report = _run(model, dict(type="Normal", override=dict(name="1")))
        with torch.no_grad():
            model[0].weight[0, 0] = 1e-40  # an unwritten built-in: PyTorch default
            model[0].weight[0, 1] = 1e35
        rows = {row.path: row for row in measure(plan, report)}
        assert _kinds(rows["0.weight"]) == ["uninitialized"]
        assert rows["0.weight"].flags[0].message.startswith("2 of 64 values are denormal")
        assert rows["0.weight"].expected_std is None

    def test_loaded_tensors_are_measured_only(self, tmp_path: Path) -> None:
        """A checkpoint's tensors have no formula: any spread passes."""
        source = nn.Linear(64, 64)
        with torch.no_grad():
            source.weight.mul_(1000)
        torch.save(source.state_dict(), tmp_path / "ckpt.pth")
        checkpoint = str(tmp_path / "ckpt.pth")
        rows = _measured(nn.Linear(64, 64), dict(type="Pretrained", checkpoint=checkpoint))
        row = rows["weight"]
        assert (row.writer, row.family, row.expected_std, row.flags) == (
            "load",
            "Pretrained",
            None,
            (),
        )

    def test_user_init_weights_are_measured_only(self) -> None:
        """What a user init_weights writes has no formula either."""

        class Net(ins.BaseModule):
            def __init__(self) -> None:
                super().__init__()
                self.fc = nn.Linear(64, 64)

            def init_weights(self) -> None:
                nn.init.normal_(self.fc.weight, std=5.0)

        rows = _measured(Net(), seed=None)
        assert (rows["fc.weight"].writer, rows["fc.weight"].expected_std) == ("call", None)
        assert rows["fc.weight"].family == "user init_weights"

    def test_nested_super_writes_have_expectations(self) -> None:
        """Rules that a user init_weights runs through super().init_weights() are checked."""

        class Net(ins.BaseModule):
            def __init__(self) -> None:
                super().__init__(dict(type="Normal", layer="Linear", std=0.5))
                self.fc = nn.Linear(64, 64)

            def init_weights(self) -> None:
                super().init_weights()

        rows = _measured(Net(), seed=None)
        assert (rows["fc.weight"].writer, rows["fc.weight"].expected_std) == ("write", 0.5)
        assert rows["fc.weight"].flags == ()


class TestIgnoredInitCfgs:
    @staticmethod
    def _net(calls_super: bool) -> nn.Module:
        class Head(ins.BaseModule):
            def __init__(self) -> None:
                super().__init__(dict(type="Normal", layer="Linear", std=0.01))
                self.fc = nn.Linear(4, 4)

            def init_weights(self) -> None:
                if calls_super:
                    super().init_weights()

        class Net(ins.BaseModule):
            def __init__(self) -> None:
                super().__init__()
                self.head = Head()

        return Net()

    def test_reported(self) -> None:
        """A BaseModule whose init_weights never calls super() ignored its init_cfg."""
        plan, report = _run(self._net(calls_super=False), seed=None)
        found = findings(plan, measure(plan, report))
        assert found == (
            Finding(
                "head",
                "init-cfg-ignored",
                "Head.init_weights never called super().init_weights(), so its init_cfg "
                "{'type': 'Normal', 'layer': 'Linear', 'std': 0.01} was ignored; call "
                "super().init_weights() in it, or remove the init_cfg.",
            ),
        )

    def test_not_reported_when_super_runs(self) -> None:
        """The same module calling super().init_weights() is fine."""
        plan, report = _run(self._net(calls_super=True), seed=None)
        assert findings(plan, measure(plan, report)) == ()

    def test_not_reported_when_nothing_calls_init_weights(self) -> None:
        """initialize(model, init_cfg) runs no init_weights: nothing was ignored by one."""
        net = self._net(calls_super=False)
        plan, report = _run(net, dict(type="Constant", val=0, layer="Linear"))
        assert findings(plan, measure(plan, report)) == ()


class TestRenderStats:
    def test_table_and_findings(self) -> None:
        """One row per parameter with its flag kinds, then each finding in full."""
        model = _model()
        plan, report = _run(model, _cfg())
        with torch.no_grad():
            model["xavier"].weight.mul_(3)
        stats = measure(plan, report)
        text = render_stats(stats, findings(plan, stats))
        assert text.startswith("18 parameters, 1 finding at 1 path\n")
        row = next(line for line in text.splitlines() if "│ xavier.weight" in line)
        assert row.rstrip("│ ").endswith("std")
        assert "Findings:\n  xavier.weight: std " in text


class TestPlot:
    def test_draws_a_png(self, tmp_path: Path) -> None:
        """A PNG with flagged weights marked (the image itself is checked by eye)."""
        pytest.importorskip("matplotlib")
        model = _model()
        plan, report = _run(model, _cfg())
        with torch.no_grad():
            model["kaiming"].weight.mul_(10)
        plot(plan, measure(plan, report), str(tmp_path / "out.png"))
        data = (tmp_path / "out.png").read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000

    def test_missing_matplotlib_says_which_install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without matplotlib the error names the extra that brings it."""
        monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)
        plan, report = _run(nn.Linear(2, 2), dict(type="Constant", val=0))
        with pytest.raises(MissingExtraError, match=r"pip install 'initschema\[plot\]'") as error:
            plot(plan, measure(plan, report), "out.png")
        assert isinstance(error.value, ImportError) and isinstance(error.value, ins.InitSchemaError)
