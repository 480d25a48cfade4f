"""Walking a model once, without recursion, and what a write to one module can meet.

torch's ``named_modules``, ``named_parameters`` and ``apply`` recurse through
generators, which costs O(depth) per item: deep models become quadratic or
worse. The compiler walks the model once here instead.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..cfg.initializer import WeightInit
from ..cfg.patterns import compile_path_pattern, is_pattern
from ..errors import did_you_mean, join_path
from ..sharding.placement import canonical_path

__all__ = [
    "Tree",
    "below",
    "children",
    "preorder",
    "select_modules",
    "select_tensors",
    "signature",
    "tensor_problems",
    "write_problems",
]


class Tree:
    """The model, walked once, without recursion (torch's ``named_modules`` and friends
    cost O(depth) per item, which makes deep models quadratic or worse).

    ``order`` lists every occurrence of every module in ``nn.Module.apply`` order
    (children first; a module shared by two parents occurs under each, as ``apply``
    visits it), so that the subtree of the occurrence at ``path`` is
    ``order[start[path]:end[path]]``. ``modules``, ``parameters`` and ``buffers`` follow
    ``named_modules`` / ``named_parameters`` / ``named_buffers``: pre-order, each module
    and tensor once, under its first path (its canonical path).
    """

    def __init__(self, root: nn.Module) -> None:
        self.order: list[tuple[str, nn.Module]] = []
        self.start: dict[str, int] = {"": 0}
        self.end: dict[str, int] = {}
        self.modules: dict[str, nn.Module] = {"": root}
        self.module_paths: dict[int, str] = {id(root): ""}
        self.shared = False
        """Whether a module or a tensor is reachable under more than one name."""
        # One depth-first walk: entering a module gives named_modules' pre-order (a module
        # met again is not recorded again), leaving it gives apply's post-order.
        stack = [("", root, children(root), 0)]
        while stack:
            path, module, kids, index = stack[-1]
            if index < len(kids):
                stack[-1] = (path, module, kids, index + 1)
                name, child = kids[index]
                child_path = f"{path}.{name}" if path else name
                self.start[child_path] = len(self.order)
                if id(child) not in self.module_paths:
                    self.module_paths[id(child)] = child_path
                    self.modules[child_path] = child
                else:
                    self.shared = True
                stack.append((child_path, child, children(child), 0))
            else:
                stack.pop()
                self.order.append((path, module))
                self.end[path] = len(self.order)
        self.parameters: list[tuple[str, Tensor]] = []
        self.buffers: list[tuple[str, Tensor]] = []
        self.tensor_paths: dict[int, str] = {}
        seen: set[int] = set()
        for found, table in ((self.parameters, "_parameters"), (self.buffers, "_buffers")):
            seen.clear()
            for path, module in self.modules.items():
                for name, tensor in getattr(module, table).items():
                    if tensor is not None and id(tensor) not in seen:
                        seen.add(id(tensor))
                        tensor_path = f"{path}.{name}" if path else name
                        found.append((tensor_path, tensor))
                        self.tensor_paths.setdefault(id(tensor), tensor_path)
                    elif tensor is not None:
                        self.shared = True

    def stream_keys(self, root: nn.Module) -> dict[str, str]:
        """For each tensor reachable under several names (tied weights, shared modules), its
        path -> the smallest of its names without wrappers: what seeded streams are keyed
        by, so that registration order cannot change its values."""
        if not self.shared:
            return {}
        names: dict[int, list[str]] = {}
        for table in (root.named_parameters, root.named_buffers):
            for name, tensor in table(remove_duplicate=False):
                names.setdefault(id(tensor), []).append(canonical_path(name))
        return {
            self.tensor_paths[key]: min(found)
            for key, found in names.items()
            if len(found) > 1 and key in self.tensor_paths
        }

    def subtree(self, module: nn.Module, path: str) -> list[tuple[str, nn.Module]]:
        """(path, submodule) of the subtree at ``path`` in apply order."""
        if path in self.end and self.order[self.end[path] - 1][1] is module:
            return self.order[self.start[path] : self.end[path]]
        return Tree(module).relative_to(path)  # an attribute that is no registered child

    def relative_to(self, prefix: str) -> list[tuple[str, nn.Module]]:
        return [(join_path(prefix, p) if p else prefix, m) for p, m in self.order]


def preorder(root: nn.Module, prefix: str = "") -> dict[str, nn.Module]:
    """``dict(root.named_modules(prefix=prefix))``, without recursion."""
    found: dict[str, nn.Module] = {}
    seen: set[int] = set()
    pending: list[tuple[str, nn.Module]] = [(prefix, root)]
    while pending:
        path, module = pending.pop()
        if id(module) in seen:
            continue
        seen.add(id(module))
        found[path] = module
        pending.extend(
            (join_path(path, name), child)
            for name, child in reversed(module._modules.items())
            if child is not None
        )
    return found


def children(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """``named_children``: registered children, each once."""
    seen: set[int] = set()
    found = []
    for name, child in module._modules.items():
        if child is not None and id(child) not in seen:
            seen.add(id(child))
            found.append((name, child))
    return found


def signature(value: object) -> tuple[Any, ...]:
    """What decides whether a write to ``value`` can fail: its type, dtype and shape (the
    pieces of ``splits`` fit one size of a dimension and not another)."""
    if isinstance(value, Tensor):
        return (Tensor, value.dtype, tuple(value.shape))
    return (type(value), None, None)


def write_problems(init: WeightInit, module: nn.Module) -> list[str]:
    """Why ``init`` could not write ``module`` (before any write): a weight or bias that is
    no tensor, a constant its dtype cannot hold, a fan-based formula on a 1-D weight."""
    found = []
    for name in ("weight", "bias"):
        value = getattr(module, name, None)
        if value is not None and not isinstance(value, Tensor):
            found.append(
                f"{type(module).__name__}.{name} is a {type(value).__name__}, not a tensor, "
                f"so {init.type_name} cannot write it"
            )
    for name in ("weight", "bias"):
        tensor = getattr(module, name, None)
        if isinstance(tensor, Tensor):
            found += _unfit_constants(init, name, tensor, f"{type(module).__name__}.{name}")
    weight = getattr(module, "weight", None)
    if isinstance(weight, Tensor) and (problem := init.shape_problem(tuple(weight.shape))):
        found.append(
            f"{problem} ({type(module).__name__}.weight); select this module with `layer` "
            f"or give it its own override rule"
        )
    return found


def below(tree: Tree, path: str) -> list[tuple[str, nn.Module]]:
    """(path relative to ``path``, module) of every module strictly below the module at
    ``path``, in model (pre-)order, each under its first path."""
    if not path:
        return [(p, m) for p, m in tree.modules.items() if p]
    start = path + "."
    return [(p[len(start) :], m) for p, m in tree.modules.items() if p.startswith(start)]


def select_tensors(
    tree: Tree, module: nn.Module, path: str, patterns: tuple[str, ...]
) -> tuple[list[tuple[str, nn.Module, list[str]]], list[str]]:
    """The tensors (parameters, then buffers, of each module) below ``module`` whose path
    relative to it matches one of ``patterns``, grouped by owner in model order:
    (owner's path, owner, attribute names); and the patterns that matched nothing."""
    regexes = [(pattern, compile_path_pattern(pattern)) for pattern in patterns]
    used: set[str] = set()
    seen: set[int] = set()
    groups = []
    for relative, owner in [("", module), *below(tree, path)]:
        names = []
        for table in (owner._parameters, owner._buffers):
            for name, tensor in table.items():
                if tensor is None or id(tensor) in seen:
                    continue
                tensor_path = join_path(relative, name)
                hits = [p for p, regex in regexes if regex.fullmatch(tensor_path)]
                if hits:
                    used.update(hits)
                    seen.add(id(tensor))
                    names.append(name)
        if names:
            groups.append((join_path(path, relative) if relative else path, owner, names))
    return groups, [p for p in patterns if p not in used]


def select_modules(
    tree: Tree, module: nn.Module, path: str, name: str, full: str
) -> list[tuple[str, nn.Module]] | str:
    """The submodules an override ``name`` selects below ``module`` (at ``path``; at
    ``full`` in the whole model, for messages): an attribute, a dotted path, or every
    module whose relative path matches a pattern (in model order, possibly none) — as
    (model-relative path, module); or, for a name or dotted path that names no
    submodule, why."""
    if is_pattern(name):
        regex = compile_path_pattern(name)
        return [
            (join_path(path, relative), sub)
            for relative, sub in below(tree, path)
            if regex.fullmatch(relative)
        ]
    target: Any = module
    walked = ""
    for part in name.split("."):
        at = join_path(full, walked) if walked else full
        where = f"module '{at}'" if at else "the root module"
        if not hasattr(target, part):
            kids = [n for n, _ in target.named_children()]
            return (
                f"{where} ({type(target).__name__}) has no attribute {part!r}"
                f"{did_you_mean(part, kids) or ';'} its submodules are {', '.join(kids) or 'none'}."
            )
        target = getattr(target, part)
        walked = join_path(walked, part)
        if not isinstance(target, nn.Module):
            return (
                f"{part!r} of {where} is a {type(target).__name__}, not a submodule; an "
                f"override names a submodule and initializes all of it."
            )
    found = tree.module_paths.get(id(target), join_path(path, name))
    return [(found, target)]


def tensor_problems(init: WeightInit, owner: nn.Module, names: list[str]) -> list[str]:
    """Why ``init``'s formula could not write the tensors ``names`` of ``owner``."""
    found = []
    for name in names:
        tensor = getattr(owner, name)
        where = f"{type(owner).__name__}.{name}"
        if problem := init.shape_problem(tuple(tensor.shape)):
            found.append(f"{problem} ({where})")
        found += _unfit_constants(init, "weight", tensor, where)
    return found


def _unfit_constants(init: WeightInit, role: str, tensor: Tensor, where: str) -> list[str]:
    """The constants ``init`` writes as ``role`` (``'weight'``/``'bias'``) that ``tensor``'s
    dtype cannot hold; ``where`` names the tensor."""
    if not tensor.is_floating_point():
        return []
    info = torch.finfo(tensor.dtype)
    return [
        f"{what}={value:g} does not fit {where} "
        f"({str(tensor.dtype).removeprefix('torch.')}, at most {info.max:g})"
        for what, value in init.constants(role)
        if abs(value) > info.max
    ]
