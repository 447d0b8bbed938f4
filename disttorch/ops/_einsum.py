"""einsum: Einstein summation as one differentiable primitive (re-exported by ``ops/linalg.py``).

The equation is first made canonical: explicit output, ellipses replaced by fresh letters and
broadcast (size-1) labels renamed, so neither the forward nor the backward relies on the array
library's broadcasting. The gradient for each operand is again an einsum (see ``EinsumBackward0``),
so double backward works too.
"""
from __future__ import annotations

import functools
import string

import numpy as np

from .. import _dtype as D
from .. import _tensor as T
from ..amp._state import STATE as _AC
from ..amp._state import cast_lower as _autocast
from ..autograd.op import Op
from ._helpers import tensor_arg
from .elementwise import _cj
from .inplace import _type_name

__all__ = ["einsum"]

_F32 = np.dtype(np.float32)
_LOW = (np.dtype(np.float16), D.bfloat16.np)
_LETTERS = string.ascii_letters
_NO_OPERANDS = ("einsum(): must specify the equation string and at least one operand, or at least one operand and its "
                "subscripts list")


@functools.lru_cache(maxsize=256)
def _canonical_einsum(equation: str, shapes: tuple):
    """Parse ``equation`` into explicit terms with no ellipsis and no broadcasting (cached: read-only results).

    Ellipses become fresh letters; a label of size 1 in one operand that is larger elsewhere is
    renamed in that operand (it broadcasts). Returns (terms, out, sizes, unused letters).
    """
    eq = equation.replace(" ", "")
    for i, c in enumerate(eq):
        if c not in _LETTERS and c not in ",.->":
            raise RuntimeError(f"einsum(): invalid subscript given at index {i} in the equation string, "
                               "subscripts must be in [a-zA-Z]")
    lhs, arrow, rhs = eq.partition("->")
    if "-" in lhs + rhs or ">" in lhs + rhs or "," in rhs:
        raise RuntimeError(f"einsum: invalid equation {equation!r}: '->' may appear once, after all the operand "
                           "subscripts")
    terms = lhs.split(",")
    if len(terms) != len(shapes):
        more = "more" if len(shapes) > len(terms) else "fewer"
        raise RuntimeError(f"einsum(): {more} operands were provided than specified in the equation")
    pool = [c for c in _LETTERS if c not in eq]
    ell_dims = []
    for k, (t, shp) in enumerate(zip(terms, shapes)):
        has_ell = "..." in t
        if t.replace("...", "", 1).count(".") or (has_ell and t.count("...") > 1):
            raise RuntimeError(f"einsum(): found '.' for operand {k} that is not part of any ellipsis")
        n = len(shp) - (len(t) - 3 if has_ell else len(t))
        if n < 0 or (n and not has_ell):
            raise RuntimeError(f"einsum(): the number of subscripts in the equation ({len(t) - 3 * has_ell}) does "
                               f"not match the number of dimensions ({len(shp)}) for operand {k}"
                               f"{'' if has_ell else ' and no ellipsis was given'}")
        ell_dims.append(n)
    n_ell = max(ell_dims, default=0)
    if n_ell > len(pool):
        raise RuntimeError("einsum: too many dimensions for the 52 available subscripts")
    ell, pool = "".join(pool[:n_ell]), pool[n_ell:]
    plain = [t.replace("...", "") for t in terms]
    terms = [t.replace("...", ell[n_ell - n:]) for t, n in zip(terms, ell_dims)]
    if arrow:
        if rhs.replace("...", "", 1).count("."):
            raise RuntimeError("einsum(): found '.' for output that is not part of any ellipsis (...)")
        out = rhs.replace("...", ell)
        for c in rhs.replace(".", ""):
            if c not in lhs:
                raise RuntimeError(f"einsum(): output subscript {c} does not appear in the equation for any "
                                   "input operand")
            if rhs.count(c) > 1:
                raise RuntimeError(f"einsum(): output subscript {c} appears more than once in the output")
    else:
        joined = "".join(plain)
        out = ell + "".join(sorted(c for c in set(joined) if joined.count(c) == 1))
    sizes = {}
    for k, (t, shp) in enumerate(zip(terms, shapes)):
        local = {}
        for c, s in zip(t, shp):
            if local.setdefault(c, s) != s:
                raise RuntimeError(f"einsum(): subscript {c} is repeated for operand {k} but the sizes don't "
                                   f"match, {s} != {local[c]}")
        for c, s in local.items():
            prev = sizes.get(c)
            if prev is None or prev == 1:
                sizes[c] = s
            elif s != 1 and s != prev:
                raise RuntimeError(f"einsum(): subscript {c} has size {s} for operand {k} which does not broadcast "
                                   f"with previously seen size {prev}")
    for k, (t, shp) in enumerate(zip(terms, shapes)):
        for c in {c for c, s in zip(t, shp) if s == 1 and sizes[c] != 1}:
            if not pool:
                raise RuntimeError("einsum: too many broadcast dimensions for the 52 available subscripts")
            f = pool.pop(0)
            sizes[f] = 1
            terms[k] = t = t.replace(c, f)
    return tuple(terms), out, sizes, tuple(pool)


def _einsum_arrays(eq: str, arrays: list, xp):
    dt = arrays[0].dtype
    low = dt in _LOW
    if low:
        arrays = [a.astype(_F32) for a in arrays]
    # NumPy's path search costs ~10 us: worth it for 3+ operands or big ones (it then uses BLAS).
    res = xp.einsum(eq, *arrays, optimize=len(arrays) > 2 or (len(arrays) == 2 and arrays[0].size * arrays[1].size
                                                                > 1 << 16))
    if len(arrays) == 1 and xp.may_share_memory(res, arrays[0]):
        res = res.copy()  # NumPy returns views for permutations and diagonals: give the output its own memory
    if not hasattr(res, "shape"):
        res = xp.asarray(res)
    return res.astype(dt) if low or res.dtype != dt else res


class EinsumBackward0(Op):
    """d out / d operand k: an einsum of the output gradient with the other operands.

    Labels only in operand k (summed in the forward) come back by einsum with a ones vector, and a
    label repeated within operand k (a diagonal) by einsum with an identity matrix.
    """

    op_name = "einsum"

    def forward(self, xp, *arrays, terms=(), out_term="", sizes=None, pool=()):
        if self.next_functions:
            self.terms, self.out, self.sizes, self.pool = terms, out_term, sizes, pool
            self.save(*range(len(arrays)))
        return _einsum_arrays(",".join(terms) + "->" + out_term, list(arrays), xp)

    def backward(self, g):
        ops = self.saved_tensors
        xp = g._xp
        grads = []
        for k, term in enumerate(self.terms):
            if self.next_functions[k][0] is None:
                grads.append(None)
                continue
            in_terms = [self.out] + [t for j, t in enumerate(self.terms) if j != k]
            in_ops = [g] + [_cj(o) for j, o in enumerate(ops) if j != k]  # PyTorch conjugates for complex
            avail = set("".join(in_terms))
            pool = list(self.pool)
            out = ""
            for c in term:
                n = self.sizes[c]
                if c not in avail:
                    in_terms.append(c)
                    in_ops.append(T._wrap(xp.ones(n, dtype=g._data.dtype)))
                    avail.add(c)
                if c in out:
                    if not pool:
                        raise NotImplementedError("einsum: backward: too many repeated subscripts for the 52 "
                                                  "available letters")
                    f = pool.pop(0)
                    in_terms.append(c + f)
                    in_ops.append(T._wrap(xp.eye(n, dtype=g._data.dtype)))
                    c = f
                out += c
            grads.append(einsum(",".join(in_terms) + "->" + out, *in_ops))
        return tuple(grads)


def _sublist_equation(args) -> tuple:
    """``einsum(a, [0, 1], b, [1, 2], [0, 2])`` -> ("ab,bc->ac", [a, b])."""
    def term(sub):
        return "".join("..." if s is Ellipsis else _LETTERS[s] for s in sub)

    ops, terms = list(args[0::2]), [term(s) for s in args[1::2]]
    if len(args) % 2:  # an output sublist
        return ",".join(terms[:len(ops) - 1]) + "->" + term(args[-1]), ops[:-1]
    return ",".join(terms), ops


def _contracts(terms, out: str) -> bool:
    """Whether some label is summed over between two operands (PyTorch then contracts them with bmm)."""
    seen: set = set()
    for t in terms:
        labels = set(t)
        if (labels & seen) - set(out):
            return True
        seen |= labels
    return False


def einsum(*args):
    """Einstein summation: ``einsum('bij,bjk->bik', a, b)``, with ``...``, implicit output, list operands.

    Example:
        >>> disttorch.einsum("ii", disttorch.eye(3))  # trace
        tensor(3.)
    """
    if not args:
        raise TypeError(_NO_OPERANDS)
    if isinstance(args[0], str):
        equation, operands = args[0], list(args[1:])
        if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
            operands = list(operands[0])
    else:
        equation, operands = _sublist_equation(args)
    if not operands:
        raise RuntimeError(_NO_OPERANDS)
    ops = [tensor_arg(o, "einsum", f"operands[{i}]") for i, o in enumerate(operands)]
    terms, out, sizes, pool = _canonical_einsum(equation, tuple(o._data.shape for o in ops))
    if _AC.active and _contracts(terms, out):
        ops = list(_autocast(*ops))  # PyTorch's einsum reaches autocast through its bmm
    dt = ops[0]._data.dtype
    for o in ops[1:]:
        if o._data.dtype != dt:
            raise RuntimeError(f"expected scalar type {_type_name(ops[0].dtype)} but found {_type_name(o.dtype)}")
    return EinsumBackward0.apply(*ops, terms=terms, out_term=out, sizes=sizes, pool=pool)
