"""Walking a model once, without recursion: its modules, tensors and subtrees.

torch's ``named_modules``, ``named_parameters`` and ``apply`` recurse through
generators, which costs O(depth) per item: deep models become quadratic or
worse. The compiler walks the model once here instead.
"""

from __future__ import annotations

from torch import Tensor, nn

from ..errors import join_path
from ..sharding.placement import canonical_path

__all__ = ["Tree", "below", "children", "possibly_uninitialized", "preorder"]


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


def below(tree: Tree, path: str) -> list[tuple[str, nn.Module]]:
    """(path relative to ``path``, module) of every module strictly below the module at
    ``path``, in model (pre-)order, each under its first path."""
    if not path:
        return [(p, m) for p, m in tree.modules.items() if p]
    start = path + "."
    return [(p[len(start) :], m) for p, m in tree.modules.items() if p.startswith(start)]


def possibly_uninitialized(owner: nn.Module) -> bool:
    """Whether a tensor of ``owner`` that nothing writes may hold uninitialized memory: its
    class is not one of torch's own modules and has no ``reset_parameters`` (built-in
    modules fill their tensors when built; ``torch.empty`` in user code does not)."""
    return not type(owner).__module__.startswith("torch.") and not callable(
        getattr(owner, "reset_parameters", None)
    )
