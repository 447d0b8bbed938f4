"""Elementwise arithmetic and math: add, mul, exp, ... and the Tensor operators.

Pattern for every op here: compute on arrays with ``xp`` from the inputs, wrap, and record a
Node only when ``needs_grad``. Backward formulas use Tensor ops (so create_graph works) and
``sum_to`` undoes broadcasting.
"""
from __future__ import annotations

from .. import _tensor as T
from ..autograd.function import Node
from ._helpers import binary, broadcast_error, shape_of, sum_to, tensor_arg

__all__ = ["add", "sub", "mul", "div", "neg", "exp", "subtract", "multiply", "divide", "negative", "true_divide"]


def _bin(a, b, op: str, fn):
    """Run array function ``fn`` on promoted operands, turning broadcast failures into RuntimeError."""
    xp, ad, bd = binary(a, b, op)
    try:
        return fn(xp, ad, bd)
    except ValueError:
        raise broadcast_error(op, shape_of(a), shape_of(b)) from None


class AddBackward0(Node):
    def backward(self, g):
        ga = sum_to(g, self.a_shape) if self.next_functions[0][0] is not None else None
        gb = None
        if self.next_functions[1][0] is not None:
            gb = sum_to(g if self.alpha == 1 else g * self.alpha, self.b_shape)
        return ga, gb


def add(input, other, *, alpha=1, out=None):
    """``input + alpha * other`` with broadcasting and type promotion."""
    if alpha != 1:
        other = mul(other, alpha) if isinstance(other, T.Tensor) else other * alpha
    data = _bin(input, other, "add", lambda xp, a, b: xp.add(a, b))
    r = T._wrap(data)
    a_t, b_t = isinstance(input, T.Tensor), isinstance(other, T.Tensor)
    if T.needs_grad(input if a_t else None, other if b_t else None):
        node = AddBackward0(input if a_t else None, other if b_t else None)
        node.a_shape, node.b_shape, node.alpha = shape_of(input), shape_of(other), 1
        r._requires_grad = True
        r.grad_fn = node
    return _out(r, out)


class SubBackward0(Node):
    def backward(self, g):
        ga = sum_to(g, self.a_shape) if self.next_functions[0][0] is not None else None
        gb = sum_to(-g, self.b_shape) if self.next_functions[1][0] is not None else None
        return ga, gb


def sub(input, other, *, alpha=1, out=None):
    """``input - alpha * other``."""
    if alpha != 1:
        other = mul(other, alpha) if isinstance(other, T.Tensor) else other * alpha
    if _is_bool(input) and _is_bool(other):
        raise RuntimeError("Subtraction, the `-` operator, with two bool tensors is not supported. "
                           "Use the `^` or `logical_xor()` operator instead.")
    data = _bin(input, other, "sub", lambda xp, a, b: xp.subtract(a, b))
    r = T._wrap(data)
    a_t, b_t = isinstance(input, T.Tensor), isinstance(other, T.Tensor)
    if T.needs_grad(input if a_t else None, other if b_t else None):
        node = SubBackward0(input if a_t else None, other if b_t else None)
        node.a_shape, node.b_shape = shape_of(input), shape_of(other)
        r._requires_grad = True
        r.grad_fn = node
    return _out(r, out)


def _is_bool(x) -> bool:
    return isinstance(x, T.Tensor) and x._data.dtype.kind == "b"


class MulBackward0(Node):
    def backward(self, g):
        a, b = self.saved_tensors
        ga = gb = None
        if self.next_functions[0][0] is not None:
            ga = sum_to(g * b, self.a_shape)
        if self.next_functions[1][0] is not None:
            gb = sum_to(g * a, self.b_shape)
        return ga, gb


def mul(input, other, *, out=None):
    """Elementwise product with broadcasting."""
    data = _bin(input, other, "mul", lambda xp, a, b: xp.multiply(a, b))
    r = T._wrap(data)
    a_t, b_t = isinstance(input, T.Tensor), isinstance(other, T.Tensor)
    if T.needs_grad(input if a_t else None, other if b_t else None):
        node = MulBackward0(input if a_t else None, other if b_t else None)
        node.a_shape, node.b_shape = shape_of(input), shape_of(other)
        node.save_for_backward(input if node.next_functions[1][0] is not None else None,
                               other if node.next_functions[0][0] is not None else None)
        r._requires_grad = True
        r.grad_fn = node
    return _out(r, out)


def _out(r, out):
    """Honour an ``out=`` argument: copy the result into ``out`` (resizing like PyTorch) and return it."""
    if out is None:
        return r
    if out._requires_grad and T.needs_grad(out):
        raise RuntimeError("functions with out=... arguments don't support automatic differentiation, but one "
                           "of the arguments requires grad.")
    if out._data.shape != r._data.shape:
        out._data = out._xp.empty(r._data.shape, dtype=out._data.dtype)
    out._xp.copyto(out._data, r._data, casting="unsafe")
    out._vc[0] += 1
    return out


class DivBackward0(Node):
    def backward(self, g):
        a, b = self.saved_tensors
        ga = gb = None
        if self.next_functions[0][0] is not None:
            ga = sum_to(g / b, self.a_shape)
        if self.next_functions[1][0] is not None:
            gb = sum_to(-g * a / (b * b), self.b_shape)
        return ga, gb


def div(input, other, *, rounding_mode=None, out=None):
    """True division (ints promote to the default float), or 'trunc'/'floor' rounding."""
    from .. import _dtype as D

    if rounding_mode is not None:
        from .elementwise_more import _rounding_div

        return _out(_rounding_div(input, other, rounding_mode), out)
    xp, ad, bd = binary(input, other, "div")
    if ad.dtype.kind in "biu":
        fd = D.get_default_dtype().np
        ad, bd = ad.astype(fd), bd.astype(fd)
    try:
        with _quiet(xp):
            data = xp.true_divide(ad, bd)
    except ValueError:
        raise broadcast_error("div", shape_of(input), shape_of(other)) from None
    r = T._wrap(data)
    a_t, b_t = isinstance(input, T.Tensor), isinstance(other, T.Tensor)
    if T.needs_grad(input if a_t else None, other if b_t else None):
        node = DivBackward0(input if a_t else None, other if b_t else None)
        node.a_shape, node.b_shape = shape_of(input), shape_of(other)
        node.save_for_backward(input if a_t else T._wrap(ad), other if b_t else T._wrap(bd))
        r._requires_grad = True
        r.grad_fn = node
    return _out(r, out)


def _quiet(xp):
    from ._helpers import quiet

    return quiet(xp)


class NegBackward0(Node):
    def backward(self, g):
        return -g


def neg(input, *, out=None):
    x = tensor_arg(input, "neg")
    if x._data.dtype.kind == "b":
        raise RuntimeError("Negation, the `-` operator, on a bool tensor is not supported. If you are trying "
                           "to invert a mask, use the `~` or `logical_not()` operator instead.")
    r = T._wrap(x._xp.negative(x._data))
    if T.needs_grad(x):
        r._requires_grad = True
        r.grad_fn = NegBackward0(x)
    return _out(r, out)


class ExpBackward0(Node):
    def backward(self, g):
        (result,) = self.saved_tensors
        return g * result


def exp(input, *, out=None):
    """e ** input (integer inputs compute in the default float dtype)."""
    from ._helpers import as_float_array

    x = tensor_arg(input, "exp")
    with _quiet(x._xp):
        r = T._wrap(x._xp.exp(as_float_array(x)))
    if T.needs_grad(x):
        node = ExpBackward0(x)
        r._requires_grad = True
        r.grad_fn = node
        node.save_for_backward(r)
    return _out(r, out)


subtract, multiply, divide, negative, true_divide = sub, mul, div, neg, div


class ElementwiseMethods:
    """Tensor methods and operators of this family."""

    __slots__ = ()

    add = add
    sub = sub
    mul = mul
    div = div
    neg = neg
    exp = exp
    subtract, multiply, divide, negative, true_divide = sub, mul, div, neg, div

    def __add__(self, other):
        return add(self, other)

    def __radd__(self, other):
        return add(other, self)

    def __sub__(self, other):
        return sub(self, other)

    def __rsub__(self, other):
        return sub(other, self)

    def __mul__(self, other):
        return mul(self, other)

    def __rmul__(self, other):
        return mul(other, self)

    def __truediv__(self, other):
        return div(self, other)

    def __rtruediv__(self, other):
        return div(other, self)

    def __neg__(self):
        return neg(self)

    def __pos__(self):
        return self
