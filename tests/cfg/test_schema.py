"""The JSON Schemas of the init_cfg language, checked with the jsonschema package."""

from __future__ import annotations

import copy
import importlib
import json
import os
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from omegaconf import OmegaConf

import initschema.hydra as ins_hydra
from initschema.cfg.initializer import WEIGHT_INITIALIZERS
from initschema.cfg.schema import hydra_rule_schema, hydra_strategy_schema, init_cfg_schema
from initschema.cli import main as cli
from initschema_testing.configs import BAD
from initschema_testing.example_app import (
    CLASSIFIERS,
    CONF,
    LIBRARY,
    PAIRS,
    STRATEGY_FILES,
    compose_app,
    strategy_overrides,
)
from initschema_testing.subprocesses import environ, run_initschema

ROOT = CONF.parent
CASES = Path(__file__).parent / "schema_cases"
VALIDATORS = {
    "init_cfg": jsonschema.Draft202012Validator(init_cfg_schema()),
    "rule": jsonschema.Draft202012Validator(hydra_rule_schema()),
    "strategy": jsonschema.Draft202012Validator(hydra_strategy_schema()),
}
RULE_FILES = sorted((LIBRARY / "init").glob("*.yaml"))
APP_FILES = [
    CONF / "config.yaml",
    *sorted((CONF / "model").glob("*.yaml")),
    *sorted((CONF / "experiment").glob("*.yaml")),
]
TITLES = {
    "init_cfg": "initschema init_cfg",
    "rule": "initschema rule (Hydra init group file)",
    "strategy": "initschema strategy (Hydra file picking init rules, or tweaks of them)",
}
CUSTOM = '''
from typing import Literal

from pydantic import Field

import initschema as ins


@ins.register_initializer("Scaled")
class ScaledInit(ins.WeightInit):
    """Multiply the weights by ``scale``."""

    scale: float = Field(gt=0, description="The factor.")
    curve: Literal["flat", "steep"] = "flat"

    def init_weight(self, weight, generator=None):
        weight.mul_(self.scale)
'''


def _load(path: Path) -> Any:
    """A YAML file as written: interpolations and ??? unresolved."""
    return yaml.safe_load(path.read_text())


def _path(parts: Sequence[Any]) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


def _errors(value: Any, kind: str = "", schema: dict[str, Any] | None = None) -> set[str]:
    """Every error of ``value``, as ``$.path: message``."""
    validator = VALIDATORS[kind] if schema is None else jsonschema.Draft202012Validator(schema)
    return {f"{_path(e.absolute_path)}: {e.message}" for e in validator.iter_errors(value)}


def _cases(outcome: str) -> list[Any]:
    return [
        pytest.param(kind, path, id=f"{kind}/{path.stem}")
        for kind in VALIDATORS
        for path in sorted((CASES / kind / outcome).glob("*.yaml"))
    ]


def _items(value: Any) -> Iterator[tuple[Any, Any]]:
    if isinstance(value, dict):
        yield from value.items()
    elif isinstance(value, list):
        yield from enumerate(value)


def _init_cfg_nodes(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[str, Any]]:
    """(path, value) of every ``init_cfg`` node of a config file, outside defaults lists."""
    for key, child in _items(value):
        if key == "defaults":
            continue
        if key == "init_cfg":
            yield _path((*path, key)), child
        else:
            yield from _init_cfg_nodes(child, (*path, key))


def _positions(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """The path of every value inside ``value`` (outside its defaults list)."""
    for key, child in _items(value):
        if key != "defaults":
            yield (*path, key)
            yield from _positions(child, (*path, key))


def _replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    copied = copy.deepcopy(value)
    node = copied
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = new
    return copied


class TestSchemaDocuments:
    @pytest.mark.parametrize("build", [init_cfg_schema, hydra_rule_schema, hydra_strategy_schema])
    def test_is_a_valid_schema(self, build: Any) -> None:
        """Each document is a valid Draft 2020-12 schema."""
        jsonschema.Draft202012Validator.check_schema(build())

    def test_defines_what_it_refers_to(self) -> None:
        """Every `$ref` of each document names one of its own definitions."""
        for build in (init_cfg_schema, hydra_rule_schema, hydra_strategy_schema):
            document = build()
            refs = set(re.findall(r'"\$ref": "#/\$defs/([^"]+)"', json.dumps(document)))
            assert refs <= set(document["$defs"]), build.__name__


class TestComposedConfigs:
    @pytest.mark.parametrize(("model", "strategy"), PAIRS)
    def test_accepts_every_shipped_strategy(self, model: str, strategy: str) -> None:
        """The composed init_cfg of every strategy validates."""
        overrides = strategy_overrides(model, strategy)
        if strategy == "finetune":
            overrides.append("model.backbone.init_cfg.pretrained.checkpoint=x.pth")
        cfg = compose_app(overrides)
        for path in ins_hydra.validate(cfg):
            node = cfg
            for part in path.split("."):
                node = node[part]
            value: Any = OmegaConf.to_container(node, resolve=True, enum_to_str=True)
            assert not _errors(value, "init_cfg"), path

    @pytest.mark.parametrize("model", CLASSIFIERS)
    def test_accepts_unresolved_composed_configs(self, model: str) -> None:
        """A composed config not yet resolved (the checkpoint still ???) validates too."""
        cfg = compose_app(strategy_overrides(model, "finetune"))
        plain = OmegaConf.to_container(cfg.model, resolve=False, enum_to_str=True)
        nodes = dict(_init_cfg_nodes(plain))
        assert nodes["$.backbone.init_cfg"]["pretrained"]["checkpoint"] == "???"
        for where, node in nodes.items():
            assert not _errors(node, "init_cfg"), where


class TestShippedFiles:
    @pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.stem)
    def test_rule_files(self, path: Path) -> None:
        """Every rule of the shipped library validates against the rule schema."""
        assert not _errors(_load(path), "rule")

    @pytest.mark.parametrize("path", STRATEGY_FILES, ids=lambda p: p.stem)
    def test_strategy_files(self, path: Path) -> None:
        """Every shipped strategy validates against the strategy schema."""
        assert not _errors(_load(path), "strategy")

    @pytest.mark.parametrize("path", RULE_FILES + STRATEGY_FILES, ids=lambda p: p.stem)
    def test_schema_of_the_modeline(self, path: Path) -> None:
        """Every rule and strategy file validates against the schema its modeline names."""
        named = re.search(r"\$schema=\S*/(\w+)\.schema\.json", path.read_text())
        assert named, f"{path} has no yaml-language-server modeline"
        assert not _errors(_load(path), named.group(1))

    @pytest.mark.parametrize("path", APP_FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
    def test_init_cfg_nodes_of_other_files(self, path: Path) -> None:
        """Every init_cfg node of the other conf files validates as a tweak (strategy schema)."""
        for where, node in _init_cfg_nodes(_load(path)):
            assert not _errors(node, "strategy"), where

    def test_model_files_have_init_cfg_nodes(self) -> None:
        """The model files' init_cfg nodes are found (the test above checks something):
        a classifier's at its backbone and head, a language model's at the model."""
        for path in (CONF / "model").glob("*.yaml"):
            found = [where for where, _ in _init_cfg_nodes(_load(path))]
            nodes = ["$.backbone.init_cfg", "$.head.init_cfg"]
            assert found == (nodes if path.stem in CLASSIFIERS else ["$.init_cfg"]), path


class TestGoodCases:
    @pytest.mark.parametrize(("kind", "path"), _cases("good"))
    def test_accepted(self, kind: str, path: Path) -> None:
        """Every file of schema_cases/KIND/good validates against the KIND schema."""
        assert not _errors(_load(path), kind)


class TestBadCases:
    @pytest.mark.parametrize(("kind", "path"), _cases("bad"))
    def test_rejected_with_the_errors_it_names(self, kind: str, path: Path) -> None:
        """Each file of schema_cases/KIND/bad gets exactly the errors its `# error:` lines name."""
        lines = path.read_text().splitlines()
        # A trailing `...`: the message starts so.
        expected = [line.removeprefix("# error: ") for line in lines if line.startswith("# error:")]
        errors = _errors(_load(path), kind)
        assert expected, f"{path} names no error"
        assert len(errors) == len(expected), errors
        for text in expected:
            prefix = text.removesuffix("...")
            assert any(e == text or (prefix != text and e.startswith(prefix)) for e in errors), (
                f"{text!r} not in {errors}"
            )


class TestUnresolvedValues:
    @pytest.mark.parametrize(
        ("kind", "path"),
        [
            *_cases("good"),
            *(pytest.param("rule", p, id=f"init/{p.stem}") for p in RULE_FILES),
            *(pytest.param("strategy", p, id=f"init_strategy/{p.stem}") for p in STRATEGY_FILES),
        ],
    )
    def test_any_value_may_be_an_interpolation_or_missing(self, kind: str, path: Path) -> None:
        """Any one value of a valid file replaced by `${…}` or `???` leaves it valid."""
        value = _load(path)
        for position in _positions(value):
            for marker in ("${oc.env:INIT_VALUE,1}", "???"):
                assert not _errors(_replaced(value, position, marker), kind), (position, marker)

    @pytest.mark.parametrize("text", ["${a} * 2", "??", "$a", "{a}", "${a}x"])
    def test_only_a_whole_interpolation(self, text: str) -> None:
        """A string that is not one whole `${…}` (nor `???`) is no stand-in for a number."""
        assert _errors({"type": "Normal", "std": text}, "init_cfg") == {
            f"$.std: {text!r} is not of type 'number'"
        }


class TestRuleFileTypedByDefaults:
    @pytest.mark.parametrize("name", list(WEIGHT_INITIALIZERS))
    def test_option_selects_its_initializer(self, name: str) -> None:
        """A rule file extending an `init` option (`- kaiming`) takes only its keys."""
        own = WEIGHT_INITIALIZERS.get(name).model_fields
        other = next(
            key
            for _, cls in WEIGHT_INITIALIZERS.items()
            for key in cls.model_fields
            if key not in own
        )
        rule = {"defaults": [ins_hydra.option_name(name), "_self_"], other: "???"}
        assert _errors(rule, "rule") == {
            f"$: Additional properties are not allowed ({other!r} was unexpected)"
        }


class TestParserBadList:
    @pytest.mark.parametrize(("cfg", "path", "text"), BAD, ids=[str(b[0])[:50] for b in BAD])
    def test_rejects_the_bad_list(self, cfg: Any, path: str, text: str) -> None:
        """Every bad config of the parser's list is rejected, except the cross-field ones."""
        errors = _errors(json.loads(json.dumps(cfg, default=str)), "init_cfg")
        if "needs a <" in text or "needs a <=" in text:
            assert not errors  # a < b is beyond JSON Schema; the parser catches it
        elif text.startswith("std must be a finite number"):
            pytest.skip("NaN is not JSON")
        else:
            assert errors, f"{cfg} was accepted"


class TestCli:
    @pytest.mark.parametrize(
        ("args", "kind"),
        [([], "init_cfg"), (["--hydra-rule"], "rule"), (["--strategy"], "strategy")],
    )
    def test_prints_the_schema_its_flags_pick(
        self, args: list[str], kind: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`initschema schema` prints the schema of the kind of file its flags name."""
        assert cli(["schema", *args]) == 0
        assert json.loads(capsys.readouterr().out)["title"] == TITLES[kind]

    def test_one_kind_at_a_time(self, capsys: pytest.CaptureFixture[str]) -> None:
        """--hydra-rule and --strategy exclude each other."""
        with pytest.raises(SystemExit) as exit_:
            cli(["schema", "--hydra-rule", "--strategy"])
        assert exit_.value.code == 2
        assert "argument --strategy: not allowed with argument --hydra-rule" in (
            capsys.readouterr().err
        )

    def test_import_that_fails(self, capsys: pytest.CaptureFixture[str]) -> None:
        """An --import that cannot be imported is a usage error that says how to fix it."""
        with pytest.raises(SystemExit) as exit_:
            cli(["schema", "--import", "no_such_module_here.inits"])
        assert exit_.value.code == 2
        assert capsys.readouterr().err.splitlines()[-1] == (
            "initschema schema: error: --import no_such_module_here.inits: cannot import it "
            "(No module named 'no_such_module_here'). Put the directory that holds it on "
            "PYTHONPATH, or install its package."
        )


@pytest.fixture
def custom_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A module on sys.path registering `Scaled` (conftest restores the registry)."""
    name = "schema_custom_inits"
    (tmp_path / f"{name}.py").write_text(CUSTOM)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    return name


class TestImport:
    def test_custom_initializer_in_the_schema(self, custom_module: str, tmp_path: Path) -> None:
        """`--import MODULE` adds MODULE's initializers, typed by `type` or `_target_`."""
        out = tmp_path / "schema.json"
        assert cli(["schema", "--import", custom_module, "-o", str(out)]) == 0
        schema = json.loads(out.read_text())
        assert not _errors({"type": "Scaled", "scale": 2, "curve": "steep"}, schema=schema)
        assert _errors({"type": "Scaled", "scale": 2, "curve": "round"}, schema=schema) == {
            "$.curve: 'round' is not one of ['flat', 'steep']"
        }
        assert _errors({"type": "Scaled", "curve": "flat"}, schema=schema) == {
            "$: 'scale' is a required property"
        }
        target = f"{custom_module}.ScaledInit"
        assert _errors({"_target_": target, "scale": 0}, schema=schema) == {
            "$.scale: 0 is less than or equal to the minimum of 0"
        }
        assert _errors({"type": "Scaled", "scale": 1, "mode": "fan_in"}, schema=schema) == {
            "$: Additional properties are not allowed ('mode' was unexpected)"
        }

    def test_only_exported_classes_by_package_name(self, custom_module: str) -> None:
        """`initschema.<Name>` names the package's own classes, not a user's."""
        importlib.import_module(custom_module)
        schema = init_cfg_schema()
        assert _errors({"_target_": "initschema.ScaledInit", "scale": 1}, schema=schema)
        assert not _errors({"_target_": "initschema.NormalInit", "std": 1}, schema=schema)

    def test_custom_option_in_rule_files(self, custom_module: str, tmp_path: Path) -> None:
        """A rule file extending the custom initializer's option is typed by it."""
        out = tmp_path / "rule.json"
        assert cli(["schema", "--hydra-rule", "--import", custom_module, "-o", str(out)]) == 0
        schema = json.loads(out.read_text())
        rule = {"defaults": ["scaled", "_self_"], "scale": "${oc.env:SCALE,2}", "std": 1}
        assert _errors(rule, schema=schema) == {
            "$: Additional properties are not allowed ('std' was unexpected)"
        }

    def test_python_m_with_pythonpath(self, tmp_path: Path) -> None:
        """`python -m initschema schema --import MODULE` finds MODULE on PYTHONPATH."""
        (tmp_path / "my_inits.py").write_text(CUSTOM)
        paths = [str(tmp_path), *filter(None, [os.environ.get("PYTHONPATH")])]
        result = run_initschema(
            "schema",
            "--strategy",
            "--import",
            "my_inits",
            cwd=ROOT,
            env=environ(*paths),
            timeout=120,
            module=True,
        )
        assert result.returncode == 0, result.stderr
        schema = json.loads(result.stdout)
        strategy = {"defaults": [{"/init@convs": "conv_scaled"}, "_self_"]}
        assert not _errors({**strategy, "convs": {"scale": 3, "curve": "steep"}}, schema=schema)
        assert _errors({**strategy, "convs": {"curve": "round"}}, schema=schema) == {
            "$.convs.curve: 'round' is not one of ['flat', 'steep']"
        }
        assert _errors({"head": {"_target_": "my_inits.ScaledInit", "std": 1}}, schema=schema) == {
            "$.head: Additional properties are not allowed ('std' was unexpected)"
        }


class TestCommittedFiles:
    @pytest.mark.parametrize(
        ("name", "args"),
        [("init_cfg", []), ("rule", ["--hydra-rule"]), ("strategy", ["--strategy"])],
    )
    def test_up_to_date(self, name: str, args: list[str], tmp_path: Path) -> None:
        """initschema/conf/schema/*.json are what `initschema schema` writes now."""
        committed = LIBRARY / "schema" / f"{name}.schema.json"
        command = " ".join(
            ["python -m initschema schema", *args, "-o", str(committed.relative_to(ROOT))]
        )
        assert committed.exists(), f"{committed} is missing; write it: {command}"
        out = tmp_path / "schema.json"
        assert cli(["schema", *args, "-o", str(out)]) == 0
        assert out.read_text() == committed.read_text(), (
            f"{committed} is stale; rewrite it: {command}"
        )

    def test_modeline_after_package_line(self) -> None:
        """The schema modeline comes after any `# @package` line."""
        for path in [*RULE_FILES, *STRATEGY_FILES]:
            lines = path.read_text().splitlines()
            modeline = next(i for i, line in enumerate(lines) if "$schema=" in line)
            package = [i for i, line in enumerate(lines) if line.startswith("# @package")]
            assert all(i < modeline for i in package), path
