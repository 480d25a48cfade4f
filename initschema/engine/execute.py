"""Running a compiled plan: faithful (global RNG, MMEngine's order) or seeded per parameter.

Faithful mode makes every random draw MMEngine makes, in the same order, so the
same ``torch.manual_seed`` gives the same bits. A write that a later action
overwrites, with no user code between the two, only draws (the RNG advances as
in MMEngine) and skips the rest: trunc-normal's ``erfinv``, scaling, clamping,
constant fills. Seeded mode writes each tensor once, with its final initializer,
from a generator derived from ``(seed, tensor path)``: values do not depend on
module order or on what else the model holds.

Provenance is recorded as (action, tensor) references and turned into text only
when a report is read.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from contextvars import ContextVar

import torch
from torch import Tensor, nn

from .._progress import ProgressBar
from .._runtime import paused_gc
from ..cfg.builtin import CallInit
from ..cfg.opaque import OpaqueInit
from ..cfg.weight_init import WeightInit
from ..checkpoints.load_hooks import load_through_hooks
from ..checkpoints.pretrained import load_into, read_state
from ..errors import join_path
from ..kernels.builtin import draw_tensor, kernel_for, runs_user_code
from ..sharding.streams import fill_seeded, seed_for
from .plan import Action, InitPlan
from .recorder import Recorder, fingerprint, kind_of, provenance_of
from .report import InitReport
from .sharded import check_sharded

__all__ = [
    "execute",
    "fingerprint",
    "init_cfg_ignored",
    "path_in_run",
    "run_nested",
    "running",
]

logger = logging.getLogger("initschema")


_RECORDER: ContextVar[Recorder | None] = ContextVar("initschema_recorder", default=None)


def running() -> bool:
    """Whether a plan is executing (so an ``init_weights`` call now is nested in it)."""
    return _RECORDER.get() is not None


def path_in_run(module: nn.Module) -> str:
    """The path of ``module`` in the model whose plan is running ('' for its root, or when
    none runs or the module is not part of it)."""
    recorder = _RECORDER.get()
    return recorder.module_paths.get(id(module), "") if recorder else ""


def execute(plan: InitPlan, seed: int | None = None, device: str = "cpu") -> InitReport:
    """Write the weights as ``plan`` says, under ``torch.no_grad()``, and report provenance.

    A tensor still on the meta device is materialized on ``device`` when the plan first
    writes it (a Pretrained entry becomes the tensor itself, without a copy in between).
    Called inside a user-defined ``init_weights`` that a running plan invoked (its
    ``super().init_weights()``), the writes are recorded in that outer run's report.
    """
    outer = _RECORDER.get()
    if outer is None:
        check_sharded(plan, seed)
    recorder = outer or Recorder(plan, torch.device(device))
    prefix = recorder.module_paths.get(id(plan.module), "") if outer else ""
    with ProgressBar(
        f"initializing {type(plan.module).__name__}",
        _elements(plan) if outer is None and sys.stderr.isatty() else None,
        threshold=_PROGRESS_FROM,
    ) as advance:
        recorder.progress = advance if advance.bar is not None else None
        _run_in(recorder, plan.actions, prefix, seed)
    entries = recorder.entries
    findings = _ignored_init_cfgs(recorder) if outer is None else ()
    report = InitReport.lazy(
        type(plan.module).__name__,
        plan.parameters,
        lambda path: provenance_of(entries.get(join_path(prefix, path))),
        lambda: Counter(kind_of(entries.get(join_path(prefix, p))) for p, _ in plan.parameters),
    )
    report.findings = findings
    if outer is None:
        report.log(logger)
    return report


def _ignored_init_cfgs(recorder: Recorder) -> tuple[str, ...]:
    """What is known only after running: user ``init_weights`` that never called
    ``super().init_weights()`` although their module has an ``init_cfg``."""
    found = {}
    for path, module in recorder.calls:
        if init_cfg_ignored(module) and id(module) not in found:
            found[id(module)] = (
                f"the init_cfg of '{path or '(root)'}' ({type(module).__name__}) was not "
                f"applied: its init_weights never called super().init_weights() (fine if "
                f"that code reads the init_cfg itself)."
            )
    return tuple(found.values())


def init_cfg_ignored(module: nn.Module) -> bool:
    """Whether ``module``, a BaseModule with an ``init_cfg`` whose own ``init_weights`` has
    run, never applied it (its ``super().init_weights()`` did not run: ``is_init`` is
    still False)."""
    return (
        bool(getattr(module, "init_cfg", None))
        and getattr(type(module), "_initschema_base_module", False) is True
        and not getattr(module, "is_init", True)
    )


_PROGRESS_FROM = 10**9
"""Plans writing more elements than this show a progress bar on a terminal."""


def _elements(plan: InitPlan) -> int:
    return sum(
        getattr(action.target, name).numel()
        for action in plan.actions
        if action.kind == "write"
        for name in action.tensors
    )


def run_nested(module: nn.Module) -> bool:
    """Run the part of the running plan that ``module.init_weights()`` (BaseModule's) was
    compiled into, when user code calls it from its own ``init_weights`` and the module's
    ``init_cfg`` and children are what they were at compile time. False when there is no
    such part (the caller compiles one)."""
    recorder = _RECORDER.get()
    subplan = recorder.subplans.get(id(module)) if recorder else None
    if recorder is None or subplan is None or not subplan.still_fits():
        return False
    _run_in(recorder, subplan.actions, "", None)
    return True


def _run_in(recorder: Recorder, actions: Sequence[Action], prefix: str, seed: int | None) -> None:
    token = _RECORDER.set(recorder)
    try:
        with torch.no_grad(), paused_gc():
            _run(actions, recorder, prefix, seed)
            recorder.settle()
    finally:
        _RECORDER.reset(token)


def _barrier(action: Action) -> bool:
    """User code runs here: what it reads and writes, and which guards it flips, is
    unknown. A user initializer counts: its ``init_weight`` may read the tensor."""
    if action.kind == "write":
        return isinstance(action.init, WeightInit) and runs_user_code(action.init)
    return action.kind in ("call", "method") or (action.kind == "load" and bool(action.hooked))


def _initialized(guard: Action) -> bool:
    return bool(getattr(guard.target, "is_init", False))


def _live(actions: Sequence[Action], start: int, end: int) -> list[int]:
    """Indices in [start, end) that run, given each guard's is_init now."""
    live, index = [], start
    while index < end:
        action = actions[index]
        if action.kind == "guard" and _initialized(action):
            index = action.skip
            continue
        live.append(index)
        index += 1
    return live


def _draw_only(actions: Sequence[Action], start: int) -> tuple[int, dict[int, frozenset[str]]]:
    """For the stretch from ``start`` to the next user code: the end of that stretch, and
    for each write in it the tensors a later action in it overwrites."""
    end = start
    while end < len(actions) and not (end > start and _barrier(actions[end])):
        end += 1
    later: set[str] = set()
    found: dict[int, frozenset[str]] = {}
    for index in reversed(_live(actions, start, end)):
        action = actions[index]
        if action.kind == "write":
            over = [n for n, p in zip(action.tensors, action.params, strict=True) if p in later]
            if over:
                found[index] = frozenset(over)
            later.update(action.params)
        elif action.kind == "load" and not action.hooked:
            later.update(action.params)
    return end, found


def _final_writers(actions: Sequence[Action]) -> dict[str, int]:
    """For seeded mode: the index of each tensor's last writer among the actions that run."""
    return {
        path: index
        for index in _live(actions, 0, len(actions))
        for path in actions[index].params
        if actions[index].kind in ("write", "load")
    }


def _run(actions: Sequence[Action], recorder: Recorder, prefix: str, seed: int | None) -> None:
    final = _final_writers(actions) if seed is not None else {}
    finals = set(final.values())
    stretch_end, draws = 0, dict[int, frozenset[str]]()
    index = 0
    while index < len(actions):
        action = actions[index]
        if seed is None and index >= stretch_end:
            stretch_end, draws = _draw_only(actions, index)
        kind = action.kind
        if kind == "write":
            if seed is None:
                _write(action, index, recorder, prefix, draws.get(index, frozenset()))
            elif index in finals:
                _write_seeded(action, index, recorder, prefix, seed, final)
        elif kind == "guard":
            # MMEngine reads a child's is_init when its loop reaches it: user code that ran
            # since (a shared module initialized through another parent) decides.
            if _initialized(action):
                if seed is not None and any(index < i < action.skip for i in finals):
                    # User code initialized it since the plan began: the final writers of
                    # its tensors are now elsewhere.
                    final = _final_writers(actions)
                    finals = set(final.values())
                index = action.skip
                continue
        elif kind == "mark":
            # The is_init property itself, without nn.Module.__setattr__'s table lookups.
            object.__setattr__(action.target, "is_init", True)
        elif kind == "load":
            _load(action, recorder, prefix)
        else:
            _call(action, recorder, prefix, seed)
        if seed is None and _barrier(action):
            stretch_end = index + 1  # what follows user code is planned after it ran
        index += 1


def _write(
    action: Action, index: int, recorder: Recorder, prefix: str, draw_only: frozenset[str]
) -> None:
    init, target = action.init, action.target
    assert isinstance(init, WeightInit) and target is not None
    kernel = kernel_for(init)
    for name, path in zip(action.tensors, action.params, strict=True):
        tensor = getattr(target, name)
        if tensor.is_meta:
            tensor = recorder.materialize(target, name)
        role = action.role(name)
        if name in draw_only:
            draw_tensor(init, role, tensor)  # overwritten later: only advance the RNG
            continue
        if role == "weight":
            kernel(init, tensor, None)
        else:
            tensor.fill_(init.bias_value)
        if recorder.progress is not None:
            recorder.progress(tensor.numel())
        recorder.record(join_path(prefix, path), tensor,
                        (action, name, prefix, False))  # fmt: skip


def _write_seeded(
    action: Action,
    index: int,
    recorder: Recorder,
    prefix: str,
    seed: int,
    final: dict[str, int],
) -> None:
    init, target = action.init, action.target
    assert isinstance(init, WeightInit) and target is not None
    params = target._parameters
    for name, path in zip(action.tensors, action.params, strict=True):
        if final.get(path) != index:
            continue
        tensor: Tensor | None = params.get(name)
        if tensor is None:  # a buffer or a plain attribute
            tensor = getattr(target, name)
        assert tensor is not None
        if tensor.is_meta:
            tensor = recorder.materialize(target, name)
        full = join_path(prefix, path)
        fill_seeded(init, action.role(name), tensor, seed, recorder.key(full))
        recorder.record(full, tensor, (action, name, prefix, False))


def _load(action: Action, recorder: Recorder, prefix: str) -> None:
    target, checkpoint = action.target, action.checkpoint
    assert target is not None and checkpoint is not None
    if action.hooked:
        _load_hooked(action, recorder, prefix)
        return
    _keep_ties(target, action.tensors, recorder)
    load_into(target, checkpoint, action.tensors, recorder.device)
    own = target.state_dict(keep_vars=True)
    for name, path in zip(action.tensors, action.params, strict=True):
        full = join_path(prefix, path)
        recorder.record(full, own[name], (action, path, prefix, False))


def _load_hooked(action: Action, recorder: Recorder, prefix: str) -> None:
    """A load through the model's load code: the whole mapped state dict, MMEngine's
    recursion, copies into the model's tensors (meta ones are allocated first)."""
    target, checkpoint = action.target, action.checkpoint
    assert target is not None and checkpoint is not None
    for key in action.tensors:
        owner, _, name = key.rpartition(".")
        if getattr(target.get_submodule(owner), name).is_meta:
            recorder.materialize(target.get_submodule(owner), name)
    own = target.state_dict(keep_vars=True)
    versions = {key: tensor._version for key, tensor in own.items()}
    run = load_through_hooks(target, read_state(checkpoint))
    if action.hooked == "unchecked":  # nothing was said at compile time
        for message in run.errors:
            logger.warning("loading %s into %s: %s", checkpoint.name, action.module, message)
    own = target.state_dict(keep_vars=True)
    for key, path in zip(action.tensors, action.params, strict=True):
        if own[key]._version != versions[key]:
            full = join_path(prefix, path)
            recorder.record(full, own[key], (action, path, prefix, False))


def _keep_ties(module: nn.Module, keys: tuple[str, ...], recorder: Recorder) -> None:
    """Materialize shared meta tensors before a load: assigning the entry to one holder
    would leave the others on the meta device (and untie them)."""
    holders = None
    for key, tensor in module.state_dict(keep_vars=True).items():
        if key in keys and tensor.is_meta:
            holders = holders or recorder.meta_holders()
            if len(holders.get(id(tensor), ())) > 1:
                owner, _, name = key.rpartition(".")
                recorder.materialize(module.get_submodule(owner), name)


def _call(action: Action, recorder: Recorder, prefix: str, seed: int | None) -> None:
    """Run a user ``init_weights`` (or a Call rule's method); what it wrote itself is read
    off tensor version counters, and off fingerprints for writes through ``.data``, which
    counters do not see."""
    module = action.target
    assert module is not None
    path = join_path(prefix, action.module)
    tensors: dict[str, Tensor] = {join_path(path, n): t for n, t in module.named_parameters()}
    if isinstance(action.init, CallInit | OpaqueInit):
        tensors.update((join_path(path, n), t) for n, t in module.named_buffers())
    recorder.settle()
    real = [(full, t) for full, t in tensors.items() if not t.is_meta]
    recorder.prints.update((full, fingerprint(tensor)) for full, tensor in real)
    for full, tensor in tensors.items():
        recorder.versions[full] = tensor._version
    if isinstance(action.init, CallInit):
        init_weights: Callable[[], None] = getattr(module, action.init.method)
    elif isinstance(action.init, OpaqueInit):
        init_weights = functools.partial(action.init.run, module)
    else:
        init_weights = getattr(module, "init_weights")  # noqa: B009
        recorder.calls.append((path, module))
    recorder.opaque += 1
    try:
        if seed is None:
            init_weights()
        else:
            _seeded_call(init_weights, seed_for(seed, recorder.key(path)))
    finally:
        recorder.opaque -= 1
    unseen = []
    for full, tensor in tensors.items():
        if tensor._version != recorder.versions[full]:
            recorder.record(full, tensor, (action, "", prefix, False))
            recorder.prints.pop(full, None)
        elif full in recorder.prints:
            unseen.append((full, tensor, recorder.prints.pop(full)))
    for full, tensor, before in unseen:
        if fingerprint(tensor) != before:
            recorder.record(full, tensor, (action, "", prefix, True))


def _seeded_call(init_weights: Callable[[], None], seed: int) -> None:
    """Run user code on a global RNG seeded for it: the CPU generator, and those of CUDA
    devices already initialized (seeding the others would initialize them, and
    ``fork_rng`` would not restore them), all restored afterwards."""
    cuda = torch.cuda.is_available() and torch.cuda.is_initialized()  # type: ignore[no-untyped-call]
    devices = list(range(torch.cuda.device_count())) if cuda else []
    with torch.random.fork_rng(devices=devices):
        torch.default_generator.manual_seed(seed)
        for device in devices:
            torch.cuda.default_generators[device].manual_seed(seed)
        init_weights()
