"""Parsing every init_cfg form, and the errors for every kind of bad config."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import initschema as ins
from initschema.cfg import parse_overrides


class TestForms:
    def test_dict(self) -> None:
        """A single rule dict becomes one rule at path init_cfg."""
        cfg = ins.parse_init_cfg(dict(type="Kaiming", layer="Conv2d"))
        assert [r.source for r in cfg] == ["init_cfg"]
        assert cfg.rules[0].init == ins.KaimingInit(layer=("Conv2d",))

    def test_list(self) -> None:
        """A list keeps its order and indexes its paths."""
        cfg = ins.parse_init_cfg([dict(type="Normal", std=0.1), dict(type="Constant", val=1)])
        assert [type(r.init) for r in cfg] == [ins.NormalInit, ins.ConstantInit]
        assert [r.source for r in cfg] == ["init_cfg[0]", "init_cfg[1]"]

    def test_named_rules(self) -> None:
        """A mapping of named rules applies in mapping order; a null rule is switched off."""
        cfg = ins.parse_init_cfg(
            {"head": dict(type="Normal", std=0.01), "off": None, "convs": dict(type="Kaiming")}
        )
        assert [(r.name, r.source) for r in cfg] == [
            ("head", "init_cfg.head"),
            ("convs", "init_cfg.convs"),
        ]

    def test_typed_objects(self) -> None:
        """Typed initializers are accepted wherever a dict is."""
        rule = ins.XavierInit(layer="Linear")
        assert ins.parse_init_cfg(rule).rules[0].init is rule
        assert ins.parse_init_cfg([rule, dict(type="Normal")]).rules[0].init is rule

    def test_class_as_type(self) -> None:
        """type may be the class itself, as in MMEngine."""
        cfg = ins.parse_init_cfg(dict(type=ins.UniformInit, a=-1, b=1))
        assert cfg.rules[0].init == ins.UniformInit(a=-1, b=1)

    @pytest.mark.parametrize("empty", [None, [], {}])
    def test_empty(self, empty: Any) -> None:
        """None, [] and {} mean no rules."""
        assert not ins.parse_init_cfg(empty)

    def test_override_forms(self) -> None:
        """override as dict, list, or mapping keyed by submodule name."""
        a = parse_overrides(dict(name="fc", type="Normal"), "o")
        b = parse_overrides([dict(name="fc", type="Normal")], "o")
        c = parse_overrides({"fc": dict(type="Normal")}, "o")
        assert a == b == c == (ins.Override(name="fc", init=ins.NormalInit()),)

    def test_name_only_override(self) -> None:
        """An override with only a name has no rule of its own."""
        (ov,) = parse_overrides(dict(name="fc"), "o")
        assert ov.init is None

    def test_bias_prob(self) -> None:
        """bias_prob sets the bias to -log((1-p)/p)."""
        init = ins.NormalInit(bias_prob=0.01)
        assert init.bias_value == pytest.approx(-4.59511985013459)


BAD: list[tuple[Any, str, str]] = [
    (
        dict(type="Kaiming", mode="fan_middle"),
        "init_cfg.mode",
        "'fan_middle' is not a valid mode; expected one of fan_in, fan_out",
    ),
    (
        dict(type="Xavier", distribution="gaussian"),
        "init_cfg.distribution",
        "'gaussian' is not a valid distribution; expected one of normal, uniform",
    ),
    (
        dict(type="Kaiming", nonlinearity="relu6"),
        "init_cfg.nonlinearity",
        "'relu6' is not a valid nonlinearity",
    ),
    (
        dict(type="Normal", std=-1),
        "init_cfg.std",
        "std should be greater than or equal to 0, got -1",
    ),
    (dict(type="TruncNormal", std=0), "init_cfg.std", "std should be greater than 0, got 0"),
    (dict(type="Normal", bias="zero"), "init_cfg.bias", "bias must be a finite number, got 'zero'"),
    (dict(type="Normal", std=float("nan")), "init_cfg.std", "std must be a finite number"),
    (dict(type="Constant", val=True), "init_cfg.val", "val must be a finite number, got True"),
    (dict(type="Normal", bias_prob=1.5), "init_cfg.bias_prob", "bias_prob should be less than 1"),
    (
        dict(type="Normal", bias_prob=0.0),
        "init_cfg.bias_prob",
        "bias_prob should be greater than 0",
    ),
    (dict(type="Uniform", a=1, b=0), "init_cfg", "Uniform needs a <= b, got a=1.0, b=0.0"),
    (dict(type="TruncNormal", a=1, b=1), "init_cfg", "TruncNormal needs a < b"),
    (
        dict(type="Normall"),
        "init_cfg.type",
        "unknown initializer type 'Normall'; did you mean 'Normal'?",
    ),
    (
        dict(type="Normal", stdd=0.1),
        "init_cfg.stdd",
        "unknown key 'stdd' for Normal; did you mean 'std'?",
    ),
    (dict(type="Constant"), "init_cfg.val", "Constant requires 'val'"),
    (dict(std=0.1), "init_cfg", "the rule has no 'type'"),
    (
        dict(type="Kaiming", override=dict(type="Xavier")),
        "init_cfg.override",
        "an override needs 'name'",
    ),
    (
        dict(type="Kaiming", override=dict(name="fc", gain=2)),
        "init_cfg.override",
        "an override with arguments needs 'type'",
    ),
    (
        dict(type="Kaiming", override=[dict(name="fc", type="Xavier", gain=-2)]),
        "init_cfg.override[0].gain",
        "gain should be greater than or equal to 0, got -2",
    ),
    (
        dict(type="Kaiming", override=dict(name="fc", type="Normal", override=dict(name="x"))),
        "init_cfg.override.override",
        "an override cannot have overrides of its own",
    ),
    (
        dict(type="Kaiming", override="fc"),
        "init_cfg.override",
        "override must be a dict or a list of dicts, got 'fc'",
    ),
    (dict(type="Kaiming", layer=3), "init_cfg.layer", "layer must be a string"),
    (
        dict(type="Pretrained", checkpoint=""),
        "init_cfg.checkpoint",
        "checkpoint should have at least 1",
    ),
    (dict(type="Caffe2Xavier", a=1), "init_cfg.a", "unknown key 'a' for Caffe2Xavier"),
    ("Kaiming", "init_cfg", "init_cfg must be a dict, a list of dicts or a mapping of named rules"),
    (3.5, "init_cfg", "got float 3.5"),
    ([dict(type="Normal"), "Xavier"], "init_cfg[1]", "a rule must be a dict with a 'type'"),
    ({"convs": dict(type="Kaiming", mode="in")}, "init_cfg.convs.mode", "'in' is not a valid mode"),
]


class TestErrors:
    @pytest.mark.parametrize(("cfg", "path", "text"), BAD, ids=[str(b[0])[:60] for b in BAD])
    def test_bad_config(self, cfg: Any, path: str, text: str) -> None:
        """Every bad config raises InitCfgError naming the path and the value."""
        with pytest.raises(ins.InitCfgError) as info:
            ins.parse_init_cfg(cfg)
        assert f"{path}: " in str(info.value)
        assert text in str(info.value)
        assert isinstance(info.value, ValueError)

    def test_every_problem_listed(self) -> None:
        """All problems of a config are reported at once, each with its path."""
        with pytest.raises(ins.InitCfgError) as info:
            ins.parse_init_cfg([dict(type="Normal", std=-1), dict(type="Kaiming", mode="x")])
        assert [p.path for p in info.value.problems] == ["init_cfg[0].std", "init_cfg[1].mode"]
        assert str(info.value).startswith("2 problems in init_cfg:")

    def test_custom_root_path(self) -> None:
        """The caller names the config's root, e.g. for a Hydra node."""
        with pytest.raises(ins.InitCfgError, match=r"^model\.init_cfg\.head\.std: "):
            ins.parse_init_cfg({"head": dict(type="Normal", std=-1)}, "model.init_cfg")

    def test_direct_construction(self) -> None:
        """Building a model object directly raises InitCfgError too."""
        with pytest.raises(ins.InitCfgError, match=r"^Kaiming\.mode: 'x' is not a valid mode"):
            ins.KaimingInit(mode="x")


class TestRoundTrip:
    def test_to_cfg(self) -> None:
        """to_cfg gives MMEngine dicts that parse back to the same rules."""
        source = [
            dict(
                type="Kaiming",
                layer="Conv2d",
                override=[dict(name="a"), dict(name="b", type="Xavier")],
            ),
            dict(type="Pretrained", checkpoint="x.pth", prefix="backbone."),
        ]
        cfg = ins.parse_init_cfg(source)
        assert ins.parse_init_cfg(json.loads(json.dumps(cfg.to_cfg()))) == cfg


numbers = st.floats(-10, 10, allow_nan=False) | st.integers(-10, 10)
layers = (
    st.none()
    | st.sampled_from(["Conv2d", "Linear"])
    | st.lists(st.sampled_from(["Conv2d", "Linear", "LayerNorm"]), max_size=3)
)
common = {"layer": layers, "bias": numbers, "bias_prob": st.none() | st.floats(0.001, 0.999)}
RULES = {
    "Constant": {"val": numbers},
    "Xavier": {"gain": st.floats(0, 5), "distribution": st.sampled_from(["normal", "uniform"])},
    "Normal": {"mean": numbers, "std": st.floats(0, 3)},
    "TruncNormal": {
        "mean": st.floats(-1, 1),
        "std": st.floats(0.01, 3),
        "a": st.floats(-5, -1.5),
        "b": st.floats(1.5, 5),
    },
    "Uniform": {"a": st.floats(-3, 0), "b": st.floats(0, 3)},
    "Kaiming": {
        "a": numbers,
        "mode": st.sampled_from(["fan_in", "fan_out"]),
        "nonlinearity": st.sampled_from(["relu", "leaky_relu", "tanh", "selu"]),
        "distribution": st.sampled_from(["normal", "uniform"]),
    },
    "Caffe2Xavier": {},
}


@st.composite
def rules(draw: st.DrawFn, with_override: bool = True) -> dict[str, Any]:
    kind = draw(st.sampled_from(sorted(RULES)))
    fields = {**common, **RULES[kind]}
    chosen = draw(st.lists(st.sampled_from(sorted(fields)), unique=True))
    if kind == "Constant" and "val" not in chosen:
        chosen.append("val")
    rule: dict[str, Any] = {"type": kind, **{k: draw(fields[k]) for k in chosen}}
    if with_override and draw(st.booleans()):
        rule["override"] = draw(
            st.lists(
                st.builds(
                    lambda n, r: {"name": n, **(r or {})},
                    st.sampled_from(["conv", "fc"]),
                    st.none() | rules(with_override=False),
                ),
                max_size=2,
            )
        )
    return rule


class TestProperties:
    @settings(max_examples=150, deadline=None)
    @given(st.lists(rules(), max_size=4))
    def test_valid_configs_parse_and_round_trip(self, cfg: list[dict[str, Any]]) -> None:
        """Random valid configs parse, and survive a JSON round trip unchanged."""
        parsed = ins.parse_init_cfg(cfg)
        assert len(parsed) == len(cfg)
        assert ins.parse_init_cfg(json.loads(json.dumps(parsed.to_cfg()))) == parsed

    @settings(max_examples=200, deadline=None)
    @given(
        rules(),
        st.sampled_from(
            [
                "std",
                "mode",
                "a",
                "gain",
                "bias",
                "layer",
                "type",
                "val",
                "override",
                "bias_prob",
                "typo",
            ]
        ),
        st.one_of(
            st.text(max_size=5),
            st.floats(),
            st.integers(),
            st.none(),
            st.booleans(),
            st.lists(st.integers(), max_size=2),
        ),
    )
    def test_mutations_raise_only_init_cfg_error(
        self, rule: dict[str, Any], key: str, value: Any
    ) -> None:
        """Any mutation either parses or raises InitCfgError, never anything else."""
        try:
            ins.parse_init_cfg([{**rule, key: value}])
        except ins.InitCfgError as error:
            assert error.problems and all(p.path.startswith("init_cfg") for p in error.problems)
