"""Hydra: the shipped conf/ composes, validates and initializes; named rules compose by key;
bad values fail at compose or load time with their exact config path."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

import initschema as ins
import initschema.hydra as ins_hydra
from initschema_testing.example_app import (
    CONF,
    MODELS,
    PAIRS,
    STRATEGY_FILES,
    compose_app,
    strategy_overrides,
    train,
)
from initschema_testing.subprocesses import Completed, environ, run_python


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A saved classifier of each model, for the fine-tune strategy."""
    paths = {}
    for model in MODELS:
        spec = ins_hydra.typed_container(
            compose_app([f"model={model}", "init_strategy@model.init_cfg=pytorch_default"])
        )
        path = tmp_path_factory.mktemp("ckpt") / f"{model}.pth"
        torch.save(instantiate(spec["model"]).state_dict(), path)
        paths[model] = str(path)
    return paths


class TestStructuredConfigs:
    def test_every_initializer_has_an_option(self) -> None:
        """Each registered initializer is an option of group init, with its defaults."""
        for name in ins.WEIGHT_INITIALIZERS:
            cfg = compose_app([f"+init@probe={ins_hydra.option_name(name)}"])
            assert cfg.probe.type == name
        cfg = compose_app(["+init@probe=kaiming"])
        assert cfg.probe.mode == "fan_out" and cfg.probe.a == 0

    def test_option_names(self) -> None:
        """Option names are the snake_case type names."""
        assert ins_hydra.option_name("TruncNormal") == "trunc_normal"
        assert ins_hydra.option_name("Caffe2Xavier") == "caffe2_xavier"

    def test_user_initializer_gets_an_option(self) -> None:
        """register_configs() after register_initializer adds the new type to the group."""

        @ins.register_initializer("HydraProbe")
        class ProbeInit(ins.WeightInit):
            scale: float = 2.0
            mode: str = "x"

            def init_weight(self, weight: torch.Tensor, generator: Any = None) -> None:
                weight.fill_(self.scale)

        ins_hydra.register_configs()
        cfg = compose_app(["+init@probe=hydra_probe", "probe.scale=3"])
        assert OmegaConf.to_container(cfg.probe)["scale"] == 3.0  # type: ignore[index]


class TestLibrary:
    @pytest.mark.parametrize(("model", "strategy"), PAIRS)
    def test_model_x_strategy(self, model: str, strategy: str, checkpoint: dict[str, str]) -> None:
        """Every model with every strategy (but those of ONLY_WITH) composes, validates and
        initializes."""
        overrides = strategy_overrides(model, strategy)
        if strategy == "finetune":
            overrides.append(f"model.backbone.init_cfg.pretrained.checkpoint={checkpoint[model]}")
        net, plan, on_meta = train.build(compose_app(overrides))
        report = ins.materialize(net, "cpu", plan=plan) if on_meta else plan.execute()
        assert len(report) == len(list(net.parameters()))
        assert all(torch.isfinite(p).all() for p in net.parameters())
        if strategy == "finetune":
            source = torch.load(checkpoint[model], weights_only=True)
            assert all(
                torch.equal(t, source[f"backbone.{k}"])
                for k, t in net.backbone.state_dict().items()
            )

    @pytest.mark.parametrize(
        "experiment", sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
    )
    def test_experiments_compose(self, experiment: str) -> None:
        """Every experiment composes; all but fine-tune (needs a checkpoint) validate."""
        cfg = compose_app([f"experiment={experiment}"])
        if experiment.endswith("finetune"):
            with pytest.raises(ins.InitCfgError, match="no value given"):
                ins_hydra.validate(cfg)
        else:
            assert ins_hydra.validate(cfg)

    def test_init_cfg_nodes_at_every_depth(self) -> None:
        """validate() finds init_cfg nodes at model, backbone and head level."""
        cfg = compose_app(
            [
                "+init@model.head.init_cfg.fc=normal",
                "model.head.init_cfg.fc.std=0.5",
                "model.head.init_cfg.fc.layer=[Linear]",
            ]
        )
        found = ins_hydra.validate(cfg)
        assert set(found) == {"model.init_cfg", "model.backbone.init_cfg", "model.head.init_cfg"}
        (rule,) = found["model.head.init_cfg"].rules
        assert rule.source == "model.head.init_cfg.fc" and rule.init.std == 0.5  # type: ignore[attr-defined]

    def test_deeper_rule_wins_and_reports_its_path(self) -> None:
        """A head rule beats the model rule; the report names the config path."""
        cfg = compose_app(
            [
                "+init@model.head.init_cfg.fc=constant",
                "model.head.init_cfg.fc.val=3",
                "model.head.init_cfg.fc.layer=[Linear]",
            ]
        )
        net, plan, on_meta = train.build(cfg)
        report = ins.materialize(net, "cpu", plan=plan) if on_meta else plan.execute()
        assert torch.all(net.head.fc.weight == 3)
        assert report["head.fc.weight"].provenance.source == "model.head.init_cfg.fc"  # type: ignore[union-attr]


def _rules(overrides: list[str]) -> dict[str, Any]:
    cfg = ins_hydra.validate(compose_app(overrides))["model.init_cfg"]
    return {rule.name: rule.init for rule in cfg}


class TestNamedRules:
    def test_tune(self) -> None:
        """model.init_cfg.convs.mode=fan_in changes one argument of one rule."""
        assert _rules(["model.init_cfg.convs.mode=fan_in"])["convs"].mode == "fan_in"

    def test_switch_strategy(self) -> None:
        """init_strategy@model.init_cfg=NAME picks another strategy."""
        rules = _rules(["init_strategy@model.init_cfg=caffe2_xavier"])
        assert isinstance(rules["convs"], ins.Caffe2XavierInit)

    def test_add(self) -> None:
        """+init@model.init_cfg.NAME=TYPE adds a rule, tunable by key."""
        rules = _rules(["+init@model.init_cfg.extra=normal", "model.init_cfg.extra.std=0.001"])
        assert list(rules) == ["convs", "norms", "head", "extra"]
        assert rules["extra"] == ins.NormalInit(std=0.001)

    def test_delete(self) -> None:
        """~init@model.init_cfg.NAME removes a rule and its values."""
        assert list(_rules(["~init@model.init_cfg.norms"])) == ["convs", "head"]

    def test_replace_type(self) -> None:
        """init@model.init_cfg.NAME=TYPE swaps the rule's initializer."""
        rules = _rules(["init@model.init_cfg.convs=xavier"])
        assert isinstance(rules["convs"], ins.XavierInit)

    def test_override_mapping_composes_by_key(self) -> None:
        """An override given as a mapping keyed by submodule name is tuned by key."""
        rules = _rules(
            [
                "init_strategy@model.init_cfg=retinanet_head",
                "+model.init_cfg.cls.override.head.type=Normal",
                "+model.init_cfg.cls.override.head.std=0.5",
            ]
        )
        (override,) = rules["cls"].override
        assert override.name == "head" and override.init == ins.NormalInit(std=0.5)


# (YAML content under a strategy, the same as a command-line override, path, text)
BAD: list[tuple[str, str, str, str]] = [
    (
        "convs: {mode: fan_middle}",
        "model.init_cfg.convs.mode=fan_middle",
        "model.init_cfg.convs.mode",
        "fan_middle",
    ),
    ("convs: {mod: fan_in}", "model.init_cfg.convs.mod=fan_in", "model.init_cfg.convs.mod", "mod"),
    ("head: {bias: zero}", "model.init_cfg.head.bias=zero", "model.init_cfg.head.bias", "zero"),
    (
        "head: {std: -1}",
        "model.init_cfg.head.std=-1",
        "model.init_cfg.head.std",
        "std should be greater than or equal to 0, got -1.0",
    ),
    (
        "convs: {type: Kaimin}",
        "model.init_cfg.convs.type=Kaimin",
        "model.init_cfg.convs.type",
        "unknown initializer type 'Kaimin'; did you mean 'Kaiming'?",
    ),
    (
        "ckpt:\n  type: Pretrained\n  checkpoint: ???",
        "+init@model.init_cfg.ckpt=pretrained",
        "model.init_cfg.ckpt.checkpoint",
        "no value given (???)",
    ),
    (
        "head: {std: '${nope}'}",
        "model.init_cfg.head.std=${nope}",
        "model.init_cfg.head.std",
        "cannot resolve '${nope}'",
    ),
    (
        "convs: {override: [{type: Xavier}]}",
        "model.init_cfg.convs.override=[{type:Xavier}]",
        "model.init_cfg.convs.override[0]",
        "an override needs 'name'",
    ),
    (
        "convs: {override: {stem: {gain: 2}}}",
        "model.init_cfg.convs.override={stem:{gain:2}}",
        "model.init_cfg.convs.override.stem",
        "an override with arguments needs 'type'",
    ),
    (
        "head: {bias_prob: 1.5}",
        "model.init_cfg.head.bias_prob=1.5",
        "model.init_cfg.head.bias_prob",
        "bias_prob should be less than 1, got 1.5",
    ),
    (
        "convs: {layer: 3}",
        "model.init_cfg.convs.layer=3",
        "model.init_cfg.convs.layer",
        "layer must be a string, got 3",
    ),
    (
        "head: {layer: [Linear], override: {head: {type: Normal, std: -2}}}",
        "model.init_cfg.head.override={head:{type:Normal,std:-2}}",
        "model.init_cfg.head.override.head.std",
        "std should be greater than or equal to 0",
    ),
]


def _error_text(overrides: list[str], conf: Path = CONF) -> str:
    """The message of whatever stops the config before any model exists."""
    try:
        cfg = compose_app(overrides, conf)
    except (ConfigCompositionException, OmegaConfBaseException) as error:
        return f"{error}\n{error.__cause__ or ''}"
    with pytest.raises(ins.InitCfgError) as info:
        ins_hydra.validate(cfg)
    return str(info.value)


class TestBadConfigs:
    @pytest.mark.parametrize(
        ("yaml", "override", "path", "text"), BAD, ids=[b[1][:40] for b in BAD]
    )
    def test_command_line(self, yaml: str, override: str, path: str, text: str) -> None:
        """A bad command-line value fails with its exact config path."""
        message = _error_text(override.split(" "))
        assert path in message and text in message

    @pytest.mark.parametrize(
        ("yaml", "override", "path", "text"), BAD, ids=[b[1][:40] for b in BAD]
    )
    def test_yaml_file(
        self, tmp_path: Path, yaml: str, override: str, path: str, text: str
    ) -> None:
        """The same value written in a strategy file fails with the same path."""
        conf = tmp_path / "conf"
        shutil.copytree(CONF, conf)
        (conf / "init_strategy").mkdir()
        (conf / "init_strategy" / "bad.yaml").write_text(
            "defaults:\n  - resnet_kaiming\n  - _self_\n" + yaml + "\n"
        )
        message = _error_text(["init_strategy@model.init_cfg=bad"], conf)
        assert path in message and text in message

    def test_origin_of_a_command_line_value(self) -> None:
        """Load-time errors say the value was set on the command line."""
        message = _error_text(["model.init_cfg.head.std=-1"])
        assert message.endswith("[set on the command line: model.init_cfg.head.std=-1]")

    def test_origin_hides_a_url_password(self) -> None:
        """A command-line origin quoting a checkpoint URL hides its credentials, as the
        message before it does."""
        cfg = compose_app(
            [
                "+init@model.init_cfg.p=pretrained",
                "model.init_cfg.p.checkpoint=ftp://alice:s3cret@host/x.pth",
            ]
        )
        with pytest.raises(ins.InitCfgError) as info:
            ins_hydra.instantiate_and_plan(cfg.model, cfg)
        message = str(info.value)
        assert "s3cret" not in message
        assert message.endswith(
            "[set on the command line: model.init_cfg.p.checkpoint=ftp://***@host/x.pth]"
        )

    def test_origin_of_a_group_value(self) -> None:
        """Load-time errors name the group option the rule came from."""
        message = _error_text(["experiment=resnet_finetune"])
        assert "[set in pkg://initschema.conf/init/backbone_pretrained.yaml]" in message

    def test_command_line_values_below_the_problem(self) -> None:
        """A rule made wrong by two command-line values names both, not its group option."""
        message = _error_text(
            ["+init@model.init_cfg.u=uniform", "model.init_cfg.u.a=1", "model.init_cfg.u.b=0"]
        )
        assert message == (
            "model.init_cfg.u: Uniform needs a <= b, got a=1.0, b=0.0. [set on the command "
            "line: model.init_cfg.u.a=1, model.init_cfg.u.b=0]"
        )

    def test_rule_name_typo(self) -> None:
        """A tweak of a rule that does not exist suggests the rule meant."""
        message = _error_text(["+model.init_cfg.heda.std=0.5"])
        assert message.startswith(
            "model.init_cfg.heda: 'heda' is no rule of this init_cfg; did you mean 'head'? "
            "(to add a new rule instead: the rule has no 'type'"
        )

    def test_every_problem_at_once(self) -> None:
        """Two bad values, two problems."""
        message = _error_text(["model.init_cfg.head.std=-1", "model.init_cfg.norms.val=???"])
        assert message.startswith("2 problems in init_cfg:")

    def test_compile_errors_name_the_config_path(self) -> None:
        """An override name the model lacks is found at compile time, at the rule's path."""
        cfg = compose_app(["model.init_cfg.head.override={nope:{}}"])
        with pytest.raises(ins.InitCfgError) as info:
            ins_hydra.instantiate_and_plan(cfg.model, cfg)
        assert str(info.value).startswith(
            "model.init_cfg.head.override.nope.name: the root "
            "module (Classifier) has no attribute 'nope'"
        )
        assert str(info.value).endswith(
            "[set on the command line: model.init_cfg.head.override={nope:{}}]"
        )

    def test_strict_layer_error_names_the_config_path(self) -> None:
        """Under strict, a layer matching nothing is an error at the rule's layer path."""
        cfg = compose_app(["model.init_cfg.head.layer=[Conv3d]", "strict=true"])
        with pytest.raises(ins.InitCfgError, match=r"^model\.init_cfg\.head\.layer: 'Conv3d'"):
            train.build(cfg)


class TestPickling:
    def test_composed_config_pickles(self) -> None:
        """A composed config, its plain container and its typed rules survive pickle."""
        import pickle

        cfg = compose_app(["init_strategy@model.init_cfg=resnet_kaiming"])
        again = pickle.loads(pickle.dumps(cfg))
        assert again.model.init_cfg.convs.mode.value == "fan_out"
        container = OmegaConf.to_container(cfg.model, resolve=True)
        assert pickle.loads(pickle.dumps(container)) == container
        typed = ins_hydra.validate(cfg)
        assert pickle.loads(pickle.dumps(typed)) == typed

    def test_torch_save_deepcopy_and_yaml(self, tmp_path: Path) -> None:
        """torch.save, copy.deepcopy and to_yaml → reload keep the same rules."""
        import copy

        cfg = compose_app(["init_strategy@model.init_cfg=resnet_kaiming"])
        torch.save({"hparams": cfg}, tmp_path / "h.pt")
        loaded = torch.load(tmp_path / "h.pt", weights_only=False)["hparams"]
        reloaded = OmegaConf.create(OmegaConf.to_yaml(cfg))
        expected = ins_hydra.validate(cfg)
        for other in (loaded, copy.deepcopy(cfg), reloaded):
            assert ins_hydra.validate(other) == expected

    def test_child_process_unpickles(self, tmp_path: Path) -> None:
        """A fresh process (as a spawn start) unpickles the config by importing initschema."""
        import pickle

        cfg = compose_app(
            ["init_strategy@model.init_cfg=resnet_kaiming", "model.init_cfg.convs.mode=fan_in"]
        )
        (tmp_path / "cfg.pkl").write_bytes(pickle.dumps(cfg))
        code = (
            "import pickle, sys; mode = pickle.load(open(sys.argv[1], 'rb')).model.init_cfg.convs"
            ".mode; print(type(mode).__name__, mode.value)"
        )
        result = run_python("-c", code, str(tmp_path / "cfg.pkl"), check=True)
        assert result.stdout.split() == ["KaimingMode", "fan_in"]


class TestTargetRules:
    def test_target_rule_validates_like_type(self) -> None:
        """{_target_: initschema.NormalInit, ...} is the same rule as {type: Normal, ...}."""
        hydra_style = dict(_target_="initschema.NormalInit", std=0.02, layer=["Linear"])
        mmengine_style = dict(type="Normal", std=0.02, layer=["Linear"])
        assert ins.parse_init_cfg(hydra_style) == ins.parse_init_cfg(mmengine_style)
        by_module = dict(hydra_style, _target_="initschema.cfg.builtin.NormalInit")
        assert ins.parse_init_cfg(by_module) == ins.parse_init_cfg(mmengine_style)

    def test_unknown_target_names_the_path_and_the_classes(self) -> None:
        """A _target_ that is no registered initializer is an error at its path."""
        with pytest.raises(ins.InitCfgError) as info:
            ins.parse_init_cfg({"head": dict(_target_="torch.nn.Linear", in_features=2)})
        message = str(info.value)
        assert message.startswith(
            "init_cfg.head._target_: 'torch.nn.Linear' is not a registered initializer class; "
            "a _target_ names one by its import path (initschema.ConstantInit for a built-in); "
            "registered: ConstantInit, XavierInit, NormalInit, "
        )
        assert len(message) < 500

    def test_misspelled_target_suggests_the_class(self) -> None:
        """A misspelled _target_ gets a did-you-mean."""
        with pytest.raises(ins.InitCfgError, match=r"did you mean 'initschema\.NormalInit'"):
            ins.parse_init_cfg(dict(_target_="initschema.NormalInti", std=1))

    def test_type_and_target_must_agree(self) -> None:
        """A rule naming two different initializers is an error at its type."""
        with pytest.raises(ins.InitCfgError, match=r"^init_cfg.type: type 'Xavier' disagrees"):
            ins.parse_init_cfg(dict(_target_="initschema.NormalInit", type="Xavier"))

    def test_hydra_zen_builds(self) -> None:
        """A rule made by hydra-zen's builds validates and instantiates as the typed rule."""
        zen = pytest.importorskip("hydra_zen")
        conf = zen.builds(ins.NormalInit, std=0.02, layer=["Linear"])
        assert zen.instantiate(conf) == ins.NormalInit(std=0.02, layer=["Linear"])
        rule = OmegaConf.to_container(OmegaConf.structured(conf))
        assert ins.parse_init_cfg({"fc": rule}) == ins.parse_init_cfg(
            {"fc": dict(type="Normal", std=0.02, layer=["Linear"])}
        )

    def test_hydra_zen_full_signature(self) -> None:
        """builds(..., populate_full_signature=True) carries every field of the rule, so an
        override of any of them works and instantiates the typed rule."""
        zen = pytest.importorskip("hydra_zen")
        conf = zen.builds(ins.KaimingInit, populate_full_signature=True)
        names = [f.name for f in dataclasses.fields(conf)]
        assert names == ["_target_", *ins.KaimingInit.model_fields]
        assert zen.instantiate(conf, mode="fan_in", a=1.0) == ins.KaimingInit(mode="fan_in", a=1.0)
        required = zen.builds(ins.PretrainedInit, populate_full_signature=True)
        assert OmegaConf.is_missing(OmegaConf.structured(required), "checkpoint")

    def test_to_object_rules_validate(self) -> None:
        """OmegaConf.to_object gives the generated dataclasses; they are rules as the
        composed config is."""
        cfg = compose_app(["model=mlp", "init_strategy@model.init_cfg=resnet_kaiming"])
        objects = OmegaConf.to_object(cfg.model)
        assert type(objects["init_cfg"]["convs"]).__name__ == "KaimingInitConfig"
        expected = ins_hydra.validate(cfg)["model.init_cfg"]
        assert ins.parse_init_cfg(objects["init_cfg"], "model.init_cfg") == expected
        wrapped = OmegaConf.create({"model": {"init_cfg": objects["init_cfg"]}})
        assert ins_hydra.validate(wrapped)["model.init_cfg"] == expected

    def test_validated_under_zen(self) -> None:
        """validated wraps a hydra-zen task (zen(task)); called outside a Hydra job, a bad
        init_cfg raises InitCfgError (no SystemExit: the caller decides)."""
        zen = pytest.importorskip("hydra_zen")
        task = ins_hydra.validated(zen.zen(lambda net: net["init_cfg"]["fc"]["std"]))
        good = OmegaConf.create({"net": {"init_cfg": {"fc": {"type": "Normal", "std": 0.5}}}})
        assert task(good) == 0.5
        with pytest.raises(ins.InitCfgError) as info:
            task(OmegaConf.create({"net": {"init_cfg": {"fc": {"type": "Normal", "std": -1}}}}))
        assert type(info.value) is ins.InitCfgError
        assert str(info.value).startswith("net.init_cfg.fc.std: std should be greater than")

    def test_instantiate_rule_and_model(self) -> None:
        """instantiate turns a composed rule into the typed initializer, and builds a model
        whose init_cfg holds composed rules."""
        from hydra.utils import instantiate

        cfg = compose_app(["model=mlp", "init_strategy@model.init_cfg=resnet_kaiming"])
        rule = instantiate(cfg.model.init_cfg.head)
        assert isinstance(rule, ins.NormalInit) and rule.std == 0.01
        model = instantiate(cfg.model)
        assert isinstance(model.init_cfg["convs"], ins.KaimingInit)
        assert ins.compile_plan(model).actions


def _app(tmp_path: Path, body: str) -> Path:
    """A little Hydra app of a user's own: plain @hydra.main, its own conf/ and rules."""
    (tmp_path / "conf" / "init").mkdir(parents=True)
    (tmp_path / "conf" / "config.yaml").write_text(
        "defaults:\n  - /init@net.init_cfg.fc: normal\n  - _self_\n"
        "net:\n  width: 4\n  weight_init: null\n"
    )
    (tmp_path / "app.py").write_text(
        "import hydra\nimport initschema.hydra as ins_hydra\n\n"
        '@hydra.main(config_path="conf", config_name="config", version_base="1.3")\n'
        f"{body}\n"
        "def task(cfg):\n    print('ran with std', cfg.net.init_cfg.fc.std)\n\n"
        "if __name__ == '__main__':\n    task()\n"
    )
    return tmp_path / "app.py"


def _run_app(app: Path, *args: str) -> Completed:
    return run_python(str(app), *args, cwd=app.parent, timeout=300)


class TestValidatedTask:
    def test_single_bad_run_exits_1_without_traceback(self, tmp_path: Path) -> None:
        """Under plain @hydra.main, a bad init_cfg stops the task: clean lines, status 1."""
        result = _run_app(_app(tmp_path, "@ins_hydra.validated"), "net.init_cfg.fc.std=-1")
        assert result.returncode == 1
        lines = result.stderr.splitlines()
        assert lines[0] == "Error executing job with overrides: ['net.init_cfg.fc.std=-1']"
        assert lines[1] == (
            "Error in config net.init_cfg.fc.std: std should be greater than or equal to 0, "
            "got -1.0. [set on the command line: net.init_cfg.fc.std=-1]"
        )
        assert len(lines) <= 4, lines
        assert "Traceback" not in result.stderr and "ran with" not in result.stdout
        # Once on the terminal (Hydra's line); the job's log file keeps it too.
        assert "Error in config" not in result.stdout
        (log,) = tmp_path.glob("outputs/*/*/app.log")
        assert "Error in config net.init_cfg.fc.std: std should be" in log.read_text()

    def test_sweep_runs_every_good_job(self, tmp_path: Path) -> None:
        """-m with a bad job in the middle: the others run, its log has the error, and the
        sweep ends non-zero."""
        app = _app(tmp_path, "@ins_hydra.validated")
        result = _run_app(app, "-m", "net.init_cfg.fc.std=0.1,-1,0.2", "hydra.sweep.dir=sweep")
        assert result.returncode != 0
        assert "ran with std 0.1" in result.stdout and "ran with std 0.2" in result.stdout
        log = (tmp_path / "sweep" / "1" / "app.log").read_text()
        assert "Error in config net.init_cfg.fc.std: std should be greater than or equal" in log
        assert "Error in config" not in (tmp_path / "sweep" / "0" / "app.log").read_text()

    def test_other_keys_are_validated_when_named(self, tmp_path: Path) -> None:
        """keys=('init_cfg', 'weight_init'): a bad node under weight_init fails too."""
        body = '@ins_hydra.validated(keys=("init_cfg", "weight_init"))'
        bad = "net.weight_init={type: Normal, std: -1}"
        result = _run_app(_app(tmp_path, body), bad)
        assert result.returncode == 1
        assert "Error in config net.weight_init.std" in result.stderr
        assert _run_app(_app(tmp_path / "x", "@ins_hydra.validated"), bad).returncode == 0


class TestPlugin:
    def _app(self, tmp_path: Path, config: str) -> Path:
        """A Hydra app that never imports initschema: only the installed plugin helps."""
        (tmp_path / "conf").mkdir(parents=True)
        (tmp_path / "conf" / "config.yaml").write_text(config)
        (tmp_path / "app.py").write_text(
            "import hydra\nfrom omegaconf import OmegaConf\n\n"
            '@hydra.main(config_path="conf", config_name="config", version_base="1.3")\n'
            "def task(cfg):\n    print(OmegaConf.to_yaml(cfg))\n\n"
            "if __name__ == '__main__':\n    task()\n"
        )
        return tmp_path / "app.py"

    def test_library_found_without_imports(self, tmp_path: Path) -> None:
        """The init group, the rule library and the strategies compose anywhere, for a model
        at any key."""
        app = self._app(
            tmp_path,
            "defaults:\n  - /init_strategy@net.init_cfg: resnet_kaiming\n  - _self_\n"
            "net:\n  width: 4\n",
        )
        result = _run_app(
            app, "+init@net.init_cfg.extra=trunc_normal", "net.init_cfg.extra.std=0.5"
        )
        assert result.returncode == 0, result.stderr
        composed = OmegaConf.create(result.stdout)
        assert composed.net.init_cfg.convs.mode == "fan_out"
        assert composed.net.init_cfg.extra.std == 0.5
        assert "model" not in composed  # nothing of the example app comes along

    def test_entry_point_initializers(self, tmp_path: Path) -> None:
        """An initializer a package registers through the initschema.initializers entry
        point group is an option of the init group in every app."""
        site = tmp_path / "site"
        (site / "myinits-0.1.dist-info").mkdir(parents=True)
        (site / "myinits-0.1.dist-info" / "METADATA").write_text(
            "Metadata-Version: 2.1\nName: myinits\nVersion: 0.1\n"
        )
        (site / "myinits-0.1.dist-info" / "entry_points.txt").write_text(
            "[initschema.initializers]\nscaled = myinits_mod\n"
        )
        (site / "myinits_mod.py").write_text(
            "import initschema as ins\n\n"
            '@ins.register_initializer("Scaled")\n'
            "class ScaledInit(ins.WeightInit):\n    scale: float = 1.0\n"
        )
        app = self._app(tmp_path / "app", "net:\n  init_cfg: {}\n")
        result = run_python(
            str(app),
            "+init@net.init_cfg.s=scaled",
            "net.init_cfg.s.scale=3",
            cwd=app.parent,
            env=environ(site),
            timeout=300,
        )
        assert result.returncode == 0, result.stderr
        assert OmegaConf.create(result.stdout).net.init_cfg.s == {
            "_target_": "myinits_mod.ScaledInit",
            "type": "Scaled",
            "override": None,
            "layer": None,
            "match": "bases",
            "params": None,
            "bias": 0.0,
            "bias_prob": None,
            "scale": 3.0,
        }


class TestErrorsOnTheWay:
    def test_init_cfg_error_pickles(self) -> None:
        """An InitCfgError crosses a process boundary with its problems intact."""
        import pickle

        error = ins.InitCfgError([ins_hydra.Problem("a.b", "bad."), ins_hydra.Problem("c", "x.")])
        again = pickle.loads(pickle.dumps(error))
        assert again.problems == error.problems and str(again) == str(error)

    def test_model_errors_in_a_validated_task(self) -> None:
        """An InitCfgError the task raises (instantiate_and_plan) comes out of a validated
        task called outside Hydra as itself, with its path and origin, once."""

        def task(cfg: Any) -> None:
            ins_hydra.instantiate_and_plan(cfg.model, cfg)

        cfg = compose_app(["model.init_cfg.head.override={nope:{}}"])
        with pytest.raises(ins.InitCfgError) as info:
            ins_hydra.validated(task)(cfg)
        assert str(info.value) == (
            "model.init_cfg.head.override.nope.name: the root module (Classifier) has no "
            "attribute 'nope'; its submodules are backbone, head. "
            "[set on the command line: model.init_cfg.head.override={nope:{}}]"
        )

    def test_interpolated_value_names_its_source(self) -> None:
        """A bad value that came through an interpolation says which, and where the
        interpolated value was set."""
        message = _error_text(["+lr_std=-0.5", "model.init_cfg.head.std=${lr_std}"])
        assert message.endswith(
            "[set on the command line: model.init_cfg.head.std=${lr_std}; value from ${lr_std} "
            "(set on the command line: +lr_std=-0.5)]"
        )

    def test_readme_app_config(self, tmp_path: Path) -> None:
        """The README's own-app config composes, validates, and takes another strategy."""
        app = TestPlugin()._app(
            tmp_path,
            "defaults:\n  - /init_strategy@model.init_cfg: resnet_kaiming\n"
            "  - /init@model.init_cfg.cls: prior_head\n  - _self_\n"
            "model:\n  width: 4\n",
        )
        for args in ([], ["init_strategy@model.init_cfg=caffe2_xavier"]):
            result = _run_app(app, *args)
            assert result.returncode == 0, result.stderr
            composed = OmegaConf.create(result.stdout)
            assert ins_hydra.validate(composed)["model.init_cfg"].rules[-1].name == "cls"


class TestResolvesOnlyWhatItNeeds:
    def test_unrelated_missing_and_env_values(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """instantiate_and_plan(cfg.model, cfg) builds the model although another key is ???
        and another reads an environment variable that is not set."""
        monkeypatch.delenv("WANDB_DIR", raising=False)
        cfg = compose_app(["model=mlp", "+data_dir=???", "+logs=${oc.env:WANDB_DIR}"])
        model, plan = ins_hydra.instantiate_and_plan(cfg.model, cfg)
        assert type(model).__name__ == "Classifier" and plan.actions
        with pytest.raises(OmegaConfBaseException):
            OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)

    def test_model_node_interpolation_that_does_not_resolve(self) -> None:
        """An interpolation inside the model node that cannot resolve names its path."""
        cfg = compose_app(["model=mlp", "+model.width=${nowhere}"])
        with pytest.raises(ins.InitCfgError, match=r"^model.width: cannot resolve: "):
            ins_hydra.instantiate_and_plan(cfg.model, cfg)

    def test_deeply_nested_resolver_output(self) -> None:
        """A resolver returning a list nested 5,000 deep is an InitCfgError at its path,
        not a RecursionError."""

        def deep() -> list[Any]:
            nested: list[Any] = []
            for _ in range(5000):
                nested = [nested]
            return nested

        OmegaConf.register_new_resolver("initschema_test_deep", deep, replace=True)
        cfg = OmegaConf.create(
            {"m": {"init_cfg": {"a": {"type": "Normal", "layer": "${initschema_test_deep:}"}}}}
        )
        with pytest.raises(ins.InitCfgError) as info:
            ins_hydra.validate(cfg)
        assert str(info.value) == (
            "m.init_cfg.a.layer: the value is nested more than 64 levels deep. "
            "[value from ${initschema_test_deep:}]"
        )


class _Plain(torch.nn.Module):
    """A model that takes no init_cfg (timm, Hugging Face style)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Linear(4, 8)
        self.head = torch.nn.Linear(8, 2)


class TestPlainModules:
    def _cfg(self, *overrides: str) -> Any:
        return compose_app(
            [
                "model=mlp",
                "+init@init_rules.linears=linear_normal",
                "+init@init_rules.head=zero_head",
                *overrides,
            ]
        )

    def test_rules_under_a_key(self) -> None:
        """plan_rules(model, cfg, key) plans the rules at a config key for a plain
        nn.Module (no init_cfg argument), as compile_plan(model, rules) would."""
        cfg = self._cfg()
        model = _Plain()
        plan = ins_hydra.plan_rules(model, cfg, "init_rules")
        rules = OmegaConf.to_container(cfg.init_rules, resolve=True, enum_to_str=True)
        expected = ins.compile_plan(model, rules, path="init_rules")
        assert plan.to_dict() == expected.to_dict()
        sources = {a["source"] for a in plan.to_dict()["actions"]}
        assert sources == {"init_rules.linears", "init_rules.head.override.head"}

    def test_errors_name_the_key_and_origin(self) -> None:
        """A bad value under the key names its config path and where it was set."""
        cfg = self._cfg("init_rules.linears.std=-3")
        model = torch.nn.Linear(2, 2)
        with pytest.raises(ins.InitCfgError) as info:
            ins_hydra.plan_rules(model, cfg, "init_rules")
        assert str(info.value) == (
            "init_rules.linears.std: std should be greater than or equal to 0, got -3.0. "
            "[set on the command line: init_rules.linears.std=-3]"
        )

    def test_missing_key(self) -> None:
        """A key the config lacks says so."""
        for key in ("nope", "a.b", "seed.x", "model.nope"):
            with pytest.raises(ins.InitCfgError) as info:
                ins_hydra.plan_rules(torch.nn.Linear(2, 2), self._cfg(), key)
            assert str(info.value) == f"{key}: the config has no {key!r}; add the rules there."
        with pytest.raises(ins.InitCfgError, match=r"^rules: no value given \(\?\?\?\)"):
            ins_hydra.plan_rules(torch.nn.Linear(2, 2), self._cfg("+rules=???"), "rules")

    def test_instantiate_and_plan_with_rules(self) -> None:
        """instantiate_and_plan(..., rules=key) builds a plain model and plans those rules;
        without rules= it is an error at the model's node naming the fix."""
        cfg = OmegaConf.create(
            {
                "model": {"_target_": "torch.nn.Linear", "in_features": 4, "out_features": 2},
                "init_rules": {"linears": {"type": "Normal", "layer": "Linear", "std": 0.01}},
            }
        )
        model, plan = ins_hydra.instantiate_and_plan(cfg.model, cfg, rules="init_rules")
        assert isinstance(model, torch.nn.Linear)
        assert {a["source"] for a in plan.to_dict()["actions"]} == {"init_rules.linears"}
        with pytest.raises(ins.InitCfgError) as info:
            ins_hydra.instantiate_and_plan(cfg.model, cfg)
        assert str(info.value).startswith(
            "model: builds a Linear, a plain nn.Module that takes no init_cfg: keep its rules "
            "under a key of the config (init_rules) and plan them with rules='init_rules'"
        )


class TestStrategyFromPython:
    def test_gpt2_with_its_parameter(self) -> None:
        """ins.strategy('gpt2', n_layer=12) gives the file's rules, n_layer in place: the
        same rules an app composing the strategy for a 12-layer model validates."""
        rules = ins.strategy("gpt2", n_layer=12)
        assert [r.name for r in rules] == ["linears", "embeddings", "norms", "residual"]
        residual = rules.rules[-1].init
        assert isinstance(residual, ins.NormalInit)
        assert (residual.std, residual.n_layers, residual.params) == (
            0.02,
            12,
            ("**.c_proj.weight",),
        )
        cfg = compose_app(["model=gpt", "init_strategy@model.init_cfg=gpt2", "model.n_layer=12"])
        composed = ins_hydra.validate(cfg)["model.init_cfg"]
        assert [r.init for r in rules] == [r.init for r in composed]

    def test_plans_a_plain_model(self) -> None:
        """The rules plan a plain nn.Module with compile_plan(model, rules)."""
        plan = ins.compile_plan(_Plain(), ins.strategy("vit_timm"))
        assert {a["source"] for a in plan.to_dict()["actions"]} == {"vit_timm.linears"}

    def test_missing_value_parameter(self) -> None:
        """A ??? of the file is a parameter (output.std as output_std), required."""
        assert ins.strategy("llama_torchtitan", output_std=0.125).rules[4].init.std == 0.125
        with pytest.raises(ins.InitCfgError) as info:
            ins.strategy("llama_torchtitan")
        assert str(info.value) == (
            "output_std: strategy 'llama_torchtitan' needs output_std=... (it sets output.std)."
        )

    def test_unknown_strategy_lists_the_available(self) -> None:
        """An unknown name lists every shipped strategy."""
        with pytest.raises(ins.InitCfgError) as info:
            ins.strategy("gpt3")
        shipped = ", ".join(p.stem for p in STRATEGY_FILES)
        assert str(info.value) == (
            f"strategy: no strategy 'gpt3'; did you mean 'gpt2'? available: {shipped}."
        )

    def test_unknown_and_ill_typed_parameters(self) -> None:
        """A parameter the strategy does not take, or of the wrong type, is named."""
        with pytest.raises(ins.InitCfgError, match=r"^x: strategy 'vit_timm' takes no "):
            ins.strategy("vit_timm", x=1)
        with pytest.raises(ins.InitCfgError) as info:
            ins.strategy("gpt2", n_layer="twelve")
        assert str(info.value).startswith("n_layer: n_layers must be")
        assert str(info.value).endswith("got 'twelve'. (it sets residual.n_layers)")


class TestOriginFiles:
    def _conf(self, tmp_path: Path) -> Path:
        conf = tmp_path / "conf"
        (conf / "experiment").mkdir(parents=True)
        (conf / "config.yaml").write_text(
            "defaults:\n  - /init@model.init_cfg.body: linear_normal\n  - _self_\n"
            "  - experiment: null\n"
            "lr: -0.5\nmodel:\n  init_cfg:\n    body:\n      std: -1\n"
        )
        (conf / "experiment" / "interp.yaml").write_text(
            "# @package _global_\nmodel:\n  init_cfg:\n    body:\n      std: ${lr}\n"
        )
        return conf

    def test_primary_config_under_self(self, tmp_path: Path) -> None:
        """A value conf/config.yaml sets under _self_ names that file, not the library
        rule file it tweaks."""
        conf = self._conf(tmp_path)
        message = _error_text([], conf)
        assert message == (
            "model.init_cfg.body.std: std should be greater than or equal to 0, got -1.0. "
            f"[set in {conf / 'config.yaml'}]"
        )

    def test_interpolation_names_both_files(self, tmp_path: Path) -> None:
        """An interpolation: the file that wrote it, and the file that set its value."""
        conf = self._conf(tmp_path)
        message = _error_text(["experiment=interp"], conf)
        assert message.endswith(
            f"[set in {conf / 'experiment' / 'interp.yaml'}; value from ${{lr}} "
            f"(set in {conf / 'config.yaml'})]"
        )

    def test_group_choice_is_no_command_line_value(self) -> None:
        """model=llama picks a file: the value's origin is the file that set it, not the
        override; llama_torchtitan's output std is a ??? to give (not the option's 1.0)."""
        message = _error_text(["model=llama", "init_strategy@model.init_cfg=llama_torchtitan"])
        assert message == (
            "model.init_cfg.output.std: no value given (???); set it, e.g. on the command "
            "line: model.init_cfg.output.std=... "
            "[set in pkg://initschema.conf/init_strategy/llama_torchtitan.yaml]"
        )

    def test_library_file(self) -> None:
        """A value no user file touched names the library file that set it."""
        message = _error_text(["experiment=resnet_finetune"])
        assert message.endswith("[set in pkg://initschema.conf/init/backbone_pretrained.yaml]")
