"""Generated init_cfg values, valid and broken, through every entry point. The oracle: the
config validates and runs, or it raises InitCfgError and nothing changed (weights bit for
bit, torch's RNG state); never another exception."""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from torch import nn

import initschema as ins
from initschema_testing.paths import ROOT
from initschema_testing.subprocesses import environ, run_initschema

TYPES = [
    "Constant",
    "Xavier",
    "Normal",
    "TruncNormal",
    "Uniform",
    "Kaiming",
    "Caffe2Xavier",
    "Orthogonal",
    "Zeros",
    "LecunNormal",
    "Call",
    "Pretrained",
    "Nope",
    "normal",
    "",
]
KEYS = [
    "layer",
    "val",
    "std",
    "mean",
    "a",
    "b",
    "gain",
    "mode",
    "distribution",
    "bias",
    "bias_prob",
    "params",
    "splits",
    "split_dim",
    "fan_axes",
    "method",
    "checkpoint",
    "layer_id_regex",
    "n_layers",
    "match",
    "nonlinearity",
    "override",
    "name",
    "junk",
]
WORDS = ["Linear", "Conv2d", "LayerNorm", "fc", "head", "conv", "norm", "*.bias", "**",
         "re:(.*)*z", "re:(a)\\1", "fan_in", "uniform", "reset_parameters", "half",
         "__init__", "absent.pth", "mro", "(\\d+)", ""]  # fmt: skip


def _leaves(yaml_only: bool) -> st.SearchStrategy[Any]:
    plain = [
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=not yaml_only, allow_infinity=not yaml_only),
        st.sampled_from(WORDS + TYPES),
        st.text(alphabet=st.characters(blacklist_characters="$"), max_size=12),
    ]
    if not yaml_only:
        plain += [
            st.builds(np.array, st.lists(st.integers(0, 3), max_size=3)),
            st.binary(max_size=4),
            st.just(float("nan")),
        ]
    return st.one_of(*plain)


def _values(yaml_only: bool) -> st.SearchStrategy[Any]:
    return st.recursive(
        _leaves(yaml_only),
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(KEYS), inner, max_size=3)
        ),
        max_leaves=8,
    )


def _rules(yaml_only: bool) -> st.SearchStrategy[Any]:
    values = _values(yaml_only)
    rule = st.fixed_dictionaries(
        {"type": st.sampled_from(TYPES) | values},
        optional={
            "layer": st.sampled_from(["Linear", "Conv2d", "LayerNorm", "Nope"]),
            **{key: values for key in KEYS[:6]},
        },
    )
    rule = st.tuples(rule, st.dictionaries(st.sampled_from(KEYS), values, max_size=2)).map(
        lambda pair: {**pair[0], **pair[1]}
    )
    return st.one_of(
        rule,
        st.lists(rule, max_size=3),
        st.dictionaries(st.sampled_from(["convs", "head", "norms"]), rule, max_size=3),
        values,
    )


NEAR_VALID = st.fixed_dictionaries(
    {"type": st.sampled_from(["Normal", "Kaiming", "Xavier", "TruncNormal", "Constant"])},
    optional={
        "layer": st.sampled_from(["Linear", "Conv2d", ["Linear", "Conv2d"], "Nope"]),
        "std": st.floats(-0.5, 2),
        "val": st.floats(-2, 2),
        "bias": st.floats(-1e40, 1e40),
        "mode": st.sampled_from(["fan_in", "fan_out", "fan_middle"]),
        "params": st.lists(st.sampled_from(["*.bias", "**", "fc.*", "re:(.*)*z", "re:h.*"])),
        "splits": st.lists(st.integers(-1, 6), max_size=3),
        "override": st.lists(
            st.fixed_dictionaries(
                {"name": st.sampled_from(["fc", "head", "nope", "conv", "re:(\\w+\\.?)+z"])},
                optional={
                    "type": st.sampled_from(["Constant", "Call", "Zeros"]),
                    "val": st.floats(-1, 1),
                    "method": st.sampled_from(["reset_parameters", "half", "apply"]),
                },
            ),
            max_size=2,
        ),
    },
)
"""Rules close to valid ones, so that many compile and run and the rest fail late."""


def init_cfgs() -> st.SearchStrategy[Any]:
    return st.one_of(_rules(yaml_only=False), NEAR_VALID, st.lists(NEAR_VALID, max_size=3))


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(OrderedDict(
        conv=nn.Conv2d(2, 4, 3), norm=nn.LayerNorm(4), fc=nn.Linear(4, 6), head=nn.Linear(6, 2)
    ))  # fmt: skip


def _bits(model: nn.Module) -> dict[str, bytes]:
    return {k: v.detach().contiguous().view(torch.uint8).numpy().tobytes()
            for k, v in model.state_dict().items()}  # fmt: skip


class Unchanged:
    """Asserts, on leaving, that the model and torch's RNG are as on entering."""

    def __init__(self, model: nn.Module | None = None) -> None:
        self.model = model

    def __enter__(self) -> Unchanged:
        self.bits = _bits(self.model) if self.model is not None else {}
        self.rng = torch.get_rng_state()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.model is not None:
            assert _bits(self.model) == self.bits, "a refused config changed the model"
        assert torch.equal(torch.get_rng_state(), self.rng), "a config drew from the RNG"


SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])  # fmt: skip


class TestParse:
    @SETTINGS
    @given(init_cfgs())
    def test_typed_or_refused(self, cfg: Any) -> None:
        """parse_init_cfg returns rules or raises InitCfgError; it draws nothing."""
        with Unchanged():
            try:
                parsed = ins.parse_init_cfg(cfg)
            except ins.InitCfgError as error:
                assert error.problems and all(p.message for p in error.problems)
                return
        again = ins.parse_init_cfg(parsed.to_cfg())
        assert [rule.init for rule in again] == [rule.init for rule in parsed]


class TestCompileExecute:
    @SETTINGS
    @given(init_cfgs(), st.sampled_from([None, 0, 7]))
    def test_runs_or_nothing_changed(self, cfg: Any, seed: int | None) -> None:
        """compile_plan refuses with nothing changed, or the plan runs without an error."""
        model = _model()
        with Unchanged(model):
            try:
                # (None would plan model.init_weights(), which a Sequential has not)
                plan = ins.compile_plan(model, [] if cfg is None else cfg, log=False)
            except ins.InitCfgError:
                event("refused")
                return
        event("ran")
        plan.execute(seed=seed)
        for name, tensor in model.state_dict().items():
            assert not tensor.is_floating_point() or bool(torch.isfinite(tensor).all()), name


class Net(ins.BaseModule):
    def __init__(self, init_cfg: Any = None) -> None:
        super().__init__(init_cfg)
        self.conv = nn.Conv2d(2, 4, 3)
        self.fc = nn.Linear(4, 6)


class TestBaseModule:
    @SETTINGS
    @given(init_cfgs())
    def test_built_and_initialized_or_refused(self, cfg: Any) -> None:
        """BaseModule(init_cfg=...) refuses a bad config when built; a built one initializes."""
        rng = torch.get_rng_state()
        try:
            net = Net(cfg)  # refused by BaseModule.__init__, before any layer is built
        except ins.InitCfgError:
            assert torch.equal(torch.get_rng_state(), rng)
            return
        try:
            with Unchanged(net):
                plan = ins.compile_plan(net, log=False)
        except ins.InitCfgError:  # checks against the model (a method it lacks, ...)
            return
        plan.execute()
        assert net.is_init


def _yaml_value(value: Any) -> bool:
    """Whether ``value`` is one YAML reads back as it is (no float noise, int-sized)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_yaml_value(v) for v in value.values())
    if isinstance(value, list):
        return all(_yaml_value(v) for v in value)
    return True


class TestValidateCommand:
    @settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck))
    @given(cfg=_rules(yaml_only=True).filter(_yaml_value))
    def test_agrees_with_parse(self, cfg: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
        """`initschema validate FILE --json` exits 0 or 1 without a traceback, and says what
        parse_init_cfg says of the same file."""
        folder = tmp_path_factory.mktemp("validate")
        path = folder / "cfg.yaml"
        path.write_text(json.dumps({"cfg": cfg}["cfg"]))  # JSON is YAML
        loaded = json.loads(path.read_text())
        try:
            ins.parse_init_cfg(loaded)
            expected = True
        except ins.InitCfgError:
            expected = False
        run = run_initschema(
            "validate", str(path), "--json", cwd=folder, env=environ(ROOT), timeout=120
        )
        assert "Traceback" not in run.stderr, run.stderr
        assert run.returncode in (0, 1), run.stderr
        assert json.loads(run.stdout)["ok"] is expected
