"""The examples run as a user runs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_tutorial_runs() -> None:
    """examples/tutorial.py runs every section and shows plans, reports and the error."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "tutorial.py")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for number in range(1, 9):
        assert f"======== {number}. " in out
    assert "initialized CustomNet: 6 parameters, 4 by init_cfg rules, 2 by user init_weights" in out
    assert "InitCfgError: TwoConvNet.init_cfg.mode: 'fan_middle' is not a valid mode" in out
