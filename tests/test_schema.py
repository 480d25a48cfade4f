"""The JSON Schema of the init_cfg language, checked with the jsonschema package."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from test_cfg import BAD
from test_hydra import CONF, MODELS, STRATEGIES, _compose

import initschema.hydra as ins_hydra
from initschema.cli import main as cli
from initschema.schema import hydra_rule_schema, init_cfg_schema

VALIDATOR = jsonschema.Draft202012Validator(init_cfg_schema())
# Values the schema cannot express (the cross-field checks a < b, a <= b; NaN).
CROSS_FIELD = {"init_cfg", "init_cfg.std"}


class TestSchema:
    def test_is_a_valid_schema(self) -> None:
        """Both documents are valid Draft 2020-12 schemas."""
        jsonschema.Draft202012Validator.check_schema(init_cfg_schema())
        jsonschema.Draft202012Validator.check_schema(hydra_rule_schema())

    @pytest.mark.parametrize("model", MODELS)
    @pytest.mark.parametrize("strategy", STRATEGIES)
    def test_accepts_every_shipped_strategy(self, model: str, strategy: str) -> None:
        """The composed init_cfg of every strategy validates."""
        overrides = [f"model={model}", f"model/init_cfg={strategy}"]
        if strategy == "finetune":
            overrides.append("model.backbone.init_cfg.pretrained.checkpoint=x.pth")
        cfg = _compose(overrides)
        for path in ins_hydra.validate(cfg):
            node = cfg
            for part in path.split("."):
                node = node[part]
            value: Any = ins_hydra.OmegaConf.to_container(node, resolve=True, enum_to_str=True)
            errors = [e.message for e in VALIDATOR.iter_errors(value)]
            assert not errors, f"{path}: {errors}"

    def test_accepts_the_raw_yaml_files(self) -> None:
        """Strategy and rule files validate against the schema their modeline names."""
        rule = jsonschema.Draft202012Validator(hydra_rule_schema())
        for path in (CONF / "init").glob("*.yaml"):
            assert not list(rule.iter_errors(yaml.safe_load(path.read_text()))), path
        for path in (CONF / "model" / "init_cfg").glob("*.yaml"):
            assert not list(VALIDATOR.iter_errors(yaml.safe_load(path.read_text()))), path

    @pytest.mark.parametrize(("cfg", "path", "text"), BAD, ids=[str(b[0])[:50] for b in BAD])
    def test_rejects_the_bad_list(self, cfg: Any, path: str, text: str) -> None:
        """Every bad config of the parser's list is rejected, except the cross-field ones."""
        errors = list(VALIDATOR.iter_errors(json.loads(json.dumps(cfg, default=str))))
        if "needs a <" in text or "needs a <=" in text:
            assert not errors  # a < b is beyond JSON Schema; the parser catches it
        elif text.startswith("std must be a finite number"):
            pytest.skip("NaN is not JSON")
        else:
            assert errors, f"{cfg} was accepted"


class TestCommittedFiles:
    @pytest.mark.parametrize(("name", "args"), [("init_cfg", []), ("rule", ["--hydra-rule"])])
    def test_up_to_date(self, name: str, args: list[str], tmp_path: Path) -> None:
        """conf/schema/*.json are what `initschema schema` writes now."""
        out = tmp_path / "schema.json"
        assert cli(["schema", *args, "-o", str(out)]) == 0
        assert out.read_text() == (CONF / "schema" / f"{name}.schema.json").read_text()

    def test_modeline_after_package_line(self) -> None:
        """The schema modeline comes after any `# @package` line."""
        for path in [
            *(CONF / "init").glob("*.yaml"),
            *(CONF / "model" / "init_cfg").glob("*.yaml"),
        ]:
            lines = path.read_text().splitlines()
            modeline = next(i for i, line in enumerate(lines) if "$schema=" in line)
            package = [i for i, line in enumerate(lines) if line.startswith("# @package")]
            assert all(i < modeline for i in package), path


def test_module_entry_point(capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI prints the schema to stdout."""
    assert cli(["schema"]) == 0
    assert json.loads(capsys.readouterr().out)["title"] == "initschema init_cfg"
