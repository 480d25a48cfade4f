"""The layering contract: the config language imports no torch, and the import-linter
contracts (pyproject.toml) hold."""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap

import pytest

from initschema_testing.paths import ROOT
from initschema_testing.subprocesses import run_python


def _run(code: str) -> str:
    """What ``code`` (dedented) prints in a fresh interpreter; an error if it fails."""
    return run_python("-c", textwrap.dedent(code), check=True).stdout


class TestConfigLanguageWithoutTorch:
    def test_parse_validate_and_schema_import_no_torch(self) -> None:
        """Parsing, validating (errors included) and the JSON Schema work without torch."""
        out = _run(
            """
            import json, sys
            import initschema
            from initschema.cfg import parse_init_cfg
            from initschema.errors import InitCfgError
            from initschema.cfg.schema import init_cfg_schema
            rules = parse_init_cfg([dict(type="Kaiming", layer="Conv2d", bias_prob=0.01),
                                    dict(type="Pretrained", checkpoint="x.pth")])
            try:
                parse_init_cfg(dict(type="Kaiming", mode="fan_middle"))
            except InitCfgError as error:
                message = str(error)
            init_cfg_schema()
            print(json.dumps([len(rules), message, "torch" in sys.modules]))
            """
        )
        count, message, torch_loaded = json.loads(out)
        assert count == 2
        assert message.startswith("init_cfg.mode: 'fan_middle' is not a valid mode")
        assert torch_loaded is False

    def test_custom_initializers_register_without_torch(self) -> None:
        """A user initializer registers and validates without torch."""
        out = _run(
            """
            import sys
            import initschema as ins

            @ins.register_initializer("Scaled")
            class ScaledInit(ins.WeightInit):
                scale: float = 1.0

            print(ins.parse_init_cfg(dict(type="Scaled", scale=2.0)).rules[0].init.scale,
                  "torch" in sys.modules)
            """
        )
        assert out.split() == ["2.0", "False"]

    def test_engine_names_load_torch_on_first_use(self) -> None:
        """ins.BaseModule and friends import the engine (and torch) when first used."""
        out = _run(
            """
            import sys
            import initschema as ins
            before = "torch" in sys.modules
            ins.KaimingInit(layer="Linear")(__import__("torch").nn.Linear(2, 2))
            print(before, ins.BaseModule.__module__)
            """
        )
        assert out.split() == ["False", "initschema.modules"]


@pytest.mark.skipif(shutil.which("lint-imports") is None, reason="import-linter not installed")
def test_import_contracts() -> None:
    """Every layer imports only the layers below it (import-linter, pyproject.toml)."""
    root = ROOT
    result = subprocess.run(["lint-imports"], capture_output=True, text=True, timeout=300, cwd=root)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "9 kept, 0 broken" in result.stdout
