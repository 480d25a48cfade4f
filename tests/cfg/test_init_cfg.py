"""Parsing every init_cfg form, and the errors for every kind of bad config."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import initschema as ins
from initschema.cfg import parse_overrides
from initschema_testing.configs import BAD, rules


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
