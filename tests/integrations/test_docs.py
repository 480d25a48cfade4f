"""The README and the guide in docs/ say what the code does: their Python runs as written."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import initschema
from initschema_testing.paths import ROOT
from initschema_testing.subprocesses import Completed, run_python

DOCS = ROOT / "docs"


def _blocks(path: Path, language: str) -> list[str]:
    """The fenced code blocks of one language in a Markdown file, in order."""
    return re.findall(rf"^```{language}\n(.*?)^```$", path.read_text(), re.M | re.S)


def _run(code: str, cwd: Path) -> Completed:
    """Run code in a fresh interpreter, as a reader pasting it into a file would."""
    return run_python("-c", code, cwd=cwd)


class TestReadme:
    def test_quick_start_runs(self, tmp_path: Path) -> None:
        """The quick start runs as written and prints the plan and the report it describes."""
        (code,) = _blocks(ROOT / "README.md", "python")
        result = _run(code, tmp_path)
        assert result.returncode == 0, result.stderr
        assert "conv2.weight" in result.stdout and "Xavier" in result.stdout
        assert "initialized Net: 6 parameters, 6 by init_cfg rules" in result.stdout

    def test_bad_config_message(self, tmp_path: Path) -> None:
        """The error shown after the quick start is the one the code raises, word for word."""
        (code,) = _blocks(ROOT / "README.md", "python")
        (shown,) = [block for block in _blocks(ROOT / "README.md", "") if ">>> " in block]
        call, expected = shown.strip().splitlines()
        check = f"""
try:
    {call.removeprefix(">>> ")}
except ins.InitCfgError as error:
    print(f"{{type(error).__name__}}: {{error}}")
"""
        result = _run(code.split("net = Net(")[0] + check, tmp_path)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == expected

    def test_test_command_is_ci(self) -> None:
        """The README's test command is the one .ci/run runs (less its quiet flags)."""
        readme = next(b for b in _blocks(ROOT / "README.md", "bash") if "pytest" in b)
        ci = (ROOT / ".ci" / "run").read_text()
        ci_command = ci[ci.index("python -m pip install --quiet torch") :].split("\n\n")[0]
        ci_command = ci_command.replace("\\\n", " ")
        quiet = {"--quiet", "-q", "-p", "no:cacheprovider"}
        assert [w for w in shlex.split(ci_command) if w not in quiet] == shlex.split(readme)

    def test_guide_lists_every_page(self) -> None:
        """The README links every page of the guide, and only pages that exist."""
        readme = (ROOT / "README.md").read_text()
        linked = set(re.findall(r"\]\(docs/([\w-]+\.md)\)", readme))
        pages = {page.name for page in DOCS.glob("*.md")} - {"index.md", "changelog.md"}
        assert linked == pages


class TestGuide:
    def test_own_initializer_recipe_runs(self, tmp_path: Path) -> None:
        """'Your own initializer' runs as written: both initializers register, validate,
        write and reproduce their seeded values."""
        code = "\n".join(_blocks(DOCS / "own-initializer.md", "python"))
        result = _run(code, tmp_path)
        assert result.returncode == 0, result.stderr
        assert "init_cfg.sparsity: sparsity must be a finite number, got 'many'." in result.stdout
        assert "Laplace(scale=0.1)" in result.stdout

    def test_api_page_names_every_export(self) -> None:
        """The API reference documents each name of initschema.__all__ once, by its public
        path, and nothing else from the package root."""
        api = (DOCS / "api.md").read_text()
        names = re.findall(r"^::: initschema\.(\w+)$", api, re.M)
        modules = {"cfg", "hydra", "mmengine"}
        roots = [name for name in names if name not in modules]
        assert sorted(roots) == sorted(initschema.__all__)
        assert modules <= set(names)
        assert not re.search(r"^::: initschema\.(\w+\.)*_", api, re.M)
