"""Tensor printing (placeholder: replaced by the PyTorch-style formatter)."""
from __future__ import annotations


def tensor_repr(t) -> str:
    return f"tensor({t.tolist()})"


def set_printoptions(**kwargs) -> None:
    pass
