"""A small pytree: flatten nested tuples, lists, dicts and namedtuples into leaves and back.

``torch.func`` takes and returns pytrees (a dict of parameters, a tuple of inputs, nested outputs); its
``in_dims``/``out_dims`` are pytree *prefixes* (a leaf such as ``0`` or ``None`` stands for a whole
subtree). Containers are tuple, list, dict (insertion order, as PyTorch's pytree) and namedtuple;
everything else, ``None`` included, is a leaf.
"""
from __future__ import annotations

from typing import Any

__all__ = ["TreeSpec", "LEAF", "tree_flatten", "tree_unflatten", "tree_map", "broadcast_prefix"]


def _is_namedtuple(x) -> bool:
    return isinstance(x, tuple) and hasattr(type(x), "_fields")


class TreeSpec:
    """The shape of a pytree: a container type, its keys (dict keys / namedtuple type) and child specs."""

    __slots__ = ("kind", "context", "children", "num_leaves")

    def __init__(self, kind, context, children: list) -> None:
        self.kind, self.context, self.children = kind, context, children
        self.num_leaves = 1 if kind is None else sum(c.num_leaves for c in children)

    def is_leaf(self) -> bool:
        return self.kind is None

    def __eq__(self, other) -> bool:
        return (isinstance(other, TreeSpec) and self.kind is other.kind and self.context == other.context
                and self.children == other.children)

    def __hash__(self) -> int:  # specs are compared, never hashed in sets; keep them hashable for safety
        return hash((self.kind, len(self.children)))

    def __repr__(self) -> str:
        if self.kind is None:
            return "*"
        kids = ", ".join(repr(c) for c in self.children)
        name = self.kind.__name__ if self.kind is not _NamedTuple else self.context.__name__
        ctx = list(self.context) if self.kind is dict else None
        return f"TreeSpec({name}, {ctx}, [{kids}])"


class _NamedTuple:  # marker kind for namedtuples (context holds the concrete class)
    pass


LEAF = TreeSpec(None, None, [])


def tree_flatten(tree: Any) -> tuple:
    """``(leaves, spec)``: the leaves in order and the structure to rebuild the tree with."""
    leaves: list = []
    return leaves, _flatten(tree, leaves)


def _flatten(tree, leaves: list) -> TreeSpec:
    if _is_namedtuple(tree):
        return TreeSpec(_NamedTuple, type(tree), [_flatten(v, leaves) for v in tree])
    if type(tree) in (tuple, list):
        return TreeSpec(type(tree), None, [_flatten(v, leaves) for v in tree])
    if isinstance(tree, dict):
        keys = list(tree.keys())
        return TreeSpec(dict, keys, [_flatten(tree[k], leaves) for k in keys])
    leaves.append(tree)
    return LEAF


def tree_unflatten(leaves, spec: TreeSpec) -> Any:
    """Rebuild the tree of ``spec`` from ``leaves`` (as many as ``spec.num_leaves``)."""
    it = iter(leaves)
    out = _unflatten(it, spec)
    return out


def _unflatten(it, spec: TreeSpec):
    if spec.kind is None:
        return next(it)
    kids = [_unflatten(it, c) for c in spec.children]
    if spec.kind is dict:
        return dict(zip(spec.context, kids))
    if spec.kind is _NamedTuple:
        return spec.context(*kids)
    return spec.kind(kids)


def tree_map(fn, tree: Any) -> Any:
    """Apply ``fn`` to every leaf, keeping the structure."""
    leaves, spec = tree_flatten(tree)
    return tree_unflatten([fn(x) for x in leaves], spec)


def broadcast_prefix(prefix: Any, spec: TreeSpec) -> list | None:
    """Expand a prefix tree (e.g. ``in_dims``) to one entry per leaf of ``spec``; None if it does not fit."""
    out: list = []
    return out if _broadcast(prefix, spec, out) else None


def _broadcast(prefix, spec: TreeSpec, out: list) -> bool:
    p_is_container = _is_namedtuple(prefix) or type(prefix) in (tuple, list) or isinstance(prefix, dict)
    if not p_is_container:
        out.extend([prefix] * spec.num_leaves)
        return True
    if spec.kind is None:
        return False
    if isinstance(prefix, dict):
        if spec.kind is not dict or set(prefix) != set(spec.context):
            return False
        return all(_broadcast(prefix[k], c, out) for k, c in zip(spec.context, spec.children))
    kind = _NamedTuple if _is_namedtuple(prefix) else type(prefix)
    if kind is not spec.kind or len(prefix) != len(spec.children):
        return False
    return all(_broadcast(p, c, out) for p, c in zip(prefix, spec.children))
