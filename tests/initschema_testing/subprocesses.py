"""Running programs in child processes, as a user runs them: this Python (a ``-c`` snippet
or a script) or the ``initschema`` command, with their output captured as text."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

Completed = subprocess.CompletedProcess[str]
"""A finished child: its exit status, stdout and stderr as text."""


def environ(
    *pythonpath: str | os.PathLike[str], unset: Iterable[str] = (), **values: str
) -> dict[str, str]:
    """This process's environment for a child, with PYTHONPATH made of ``pythonpath`` (and
    none at all when none is given: this process's own is never passed on), the variables
    named in ``unset`` removed and ``values`` set."""
    left_out = {"PYTHONPATH", *unset}
    env = {k: v for k, v in os.environ.items() if k not in left_out}
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(map(str, pythonpath))
    return {**env, **values}


def initschema_command(*, module: bool = False) -> list[str]:
    """The ``initschema`` console script installed beside this Python, or ``python -m
    initschema`` where there is none or ``module`` asks for it."""
    script = Path(sys.executable).with_name("initschema")
    if module or not script.exists():
        return [sys.executable, "-m", "initschema"]
    return [str(script)]


def run_python(
    *args: str,
    cwd: str | os.PathLike[str] | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    check: bool = False,
) -> Completed:
    """This Python with ``args`` (``-c CODE ARG...`` or ``SCRIPT ARG...``) in ``cwd``, with
    ``env`` (None: this process's environment); stdout and stderr captured as text."""
    return _run([sys.executable, *args], cwd, env, timeout, check)


def run_initschema(
    *args: str,
    cwd: str | os.PathLike[str],
    env: dict[str, str] | None = None,
    timeout: float = 300,
    module: bool = False,
) -> Completed:
    """The ``initschema`` command (:func:`initschema_command`) with ``args`` in ``cwd``, with
    ``env`` (None: this process's environment); stdout and stderr captured as text, the
    exit status left to the caller to check."""
    return _run([*initschema_command(module=module), *args], cwd, env, timeout, False)


def run_initschema_into_head(
    *args: str,
    cwd: str | os.PathLike[str],
    env: dict[str, str] | None = None,
    read: int = 10,
    timeout: float = 300,
) -> Completed:
    """``initschema ARGS | head -c READ``: the command's first ``read`` bytes of stdout are
    read, then the pipe is closed under it; its stdout here is those bytes (as text), its
    stderr all it wrote there, its exit status the one it ended with."""
    command = [*initschema_command(), *args]
    with subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        head = process.stdout.read(read)
        process.stdout.close()
        stderr = process.stderr.read()
        status = process.wait(timeout=timeout)
    return subprocess.CompletedProcess(command, status, head.decode(), stderr.decode())


def _run(
    command: list[str],
    cwd: str | os.PathLike[str] | None,
    env: dict[str, str] | None,
    timeout: float,
    check: bool,
) -> Completed:
    return subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, check=check, cwd=cwd, env=env
    )
