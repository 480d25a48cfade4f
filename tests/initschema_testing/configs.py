"""Init_cfgs shared by tests of several layers: bad configs with the path and text of
their error, and a Hypothesis strategy of valid rules."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

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
    (
        dict(type="Caffe2Xavier", a=1),
        "init_cfg.a",
        "unknown key 'a' for Caffe2Xavier. Valid keys: type, ",
    ),
    ("Kaiming", "init_cfg", "init_cfg must be a dict, a list of dicts or a mapping of named rules"),
    (3.5, "init_cfg", "got float 3.5"),
    ([dict(type="Normal"), "Xavier"], "init_cfg[1]", "a rule must be a dict with a 'type'"),
    ({"convs": dict(type="Kaiming", mode="in")}, "init_cfg.convs.mode", "'in' is not a valid mode"),
]


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
