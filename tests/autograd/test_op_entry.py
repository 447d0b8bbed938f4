"""The entry point of differentiable ops (disttorch/autograd/op.py): what Op.apply alone decides."""
import numpy as np
import pytest

import disttorch as torch
from disttorch.autograd import op as O


class Cube(O.Op):
    op_name = "cube"

    def forward(self, xp, x):
        self.save(0)
        return x * x * x

    def backward(self, g):
        (x,) = self.saved_tensors
        return 3 * g * x * x


class SinCos(O.Op):
    """Two outputs and an integer third one (not differentiable), as max/sort return indices."""

    op_name = "sincos"

    def forward(self, xp, x):
        self.save(0)
        return xp.sin(x), xp.cos(x), xp.argsort(x)

    def backward(self, gs, gc, _gi):
        (x,) = self.saved_tensors
        return gs * x.cos() - gc * x.sin()


class Scale(O.Op):
    """A fused-style op with both backward forms: Tensor ops and arrays."""

    op_name = "scale"
    calls = {"arrays": 0, "tensor": 0}

    def forward(self, xp, x, w, *, k=1.0):
        self.k = k
        self.save(0, 1)
        return k * x * w

    def backward(self, g):
        Scale.calls["tensor"] += 1
        x, w = self.saved_tensors
        nig = self.needs_input_grad
        return (self.k * g * w if nig[0] else None), (self.k * g * x if nig[1] else None)

    def backward_arrays(self, xp, g):
        Scale.calls["arrays"] += 1
        x, w = self.saved_tensors
        nig = self.needs_input_grad
        x, w = getattr(x, "_data", x), getattr(w, "_data", w)
        return (self.k * g * w if nig[0] else None), (self.k * g * x if nig[1] else None)


def _x(*vals, rg=True):
    return torch.tensor(vals, dtype=torch.float64, requires_grad=rg)


def test_forward_backward_and_gradcheck_against_numeric():
    x = _x(0.5, -1.5, 2.0)
    y = Cube.apply(x)
    np.testing.assert_allclose(y.detach().numpy(), np.array([0.5, -1.5, 2.0]) ** 3)
    assert type(y.grad_fn).__name__ == "Cube" and y.grad_fn.name() == "Cube"
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 3 * np.array([0.5, -1.5, 2.0]) ** 2)
    assert torch.autograd.gradcheck(Cube.apply, (_x(0.3, 1.1),))
    assert torch.autograd.gradgradcheck(Cube.apply, (_x(0.3, 1.1),))


def test_no_graph_without_grad_or_under_no_grad():
    y = Cube.apply(_x(1.0, rg=False))
    assert y.grad_fn is None and not y.requires_grad
    with torch.no_grad():
        z = Cube.apply(_x(1.0))
    assert z.grad_fn is None and not z.requires_grad


def test_numbers_pass_through_and_edges_skip_them():
    x = _x(1.0, 2.0)
    y = O.Op.apply.__func__(Scale, x, 3.0, k=2.0)  # the classmethod, called as ops call it
    assert y.grad_fn.next_functions[1] == (None, 0)
    assert y.grad_fn.needs_input_grad == (True, False)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [6.0, 6.0])


def test_multiple_outputs_attach_float_ones_only():
    x = _x(0.2, 0.9)
    s, c, i = SinCos.apply(x)
    assert s.grad_fn is c.grad_fn is not None and s.grad_fn is not None
    assert i.grad_fn is None and not i.requires_grad and i.dtype == torch.int64
    (s.sum() + 2 * c.sum()).backward()
    v = np.array([0.2, 0.9])
    np.testing.assert_allclose(x.grad.numpy(), np.cos(v) - 2 * np.sin(v))
    # an unused output gets zeros, as in PyTorch
    x2 = _x(0.2, 0.9)
    SinCos.apply(x2)[1].sum().backward()
    np.testing.assert_allclose(x2.grad.numpy(), -np.sin(v))


def test_saved_input_modified_in_place_raises_naming_the_node():
    x = _x(1.0, 2.0)
    a = x * 1
    y = Cube.apply(a)
    a.add_(1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation.*Cube"):
        y.sum().backward()


def test_out_argument():
    a, b = torch.ones(3), torch.full((3,), 2.0)
    out = torch.empty(1)
    r = torch.add(a, b, out=out)
    assert r is out and out.tolist() == [3.0, 3.0, 3.0] and out._version > 0
    with pytest.raises(RuntimeError, match="out=... arguments don't support automatic differentiation"):
        torch.add(_x(1.0), 1.0, out=torch.empty(1, dtype=torch.float64))
    with pytest.raises(TypeError, match="argument 'out' must be Tensor"):
        torch.add(a, b, out=[1])


def test_in_place_through_the_entry_point():
    x = _x(1.0, 2.0)
    a = x * 1
    r = O.apply_(Cube, a)
    assert r is a and a.grad_fn.name() == "Cube" and a._version == 1
    a.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 12.0])
    with pytest.raises(RuntimeError, match="cube_: a leaf Variable that requires grad"):
        O.apply_(Cube, _x(1.0))


class _OtherDeviceArray:
    """Stands in for a CUDA array: it says it lives on cuda:0 (the check runs before any computation)."""

    class _Dev:
        id = 0

    device = _Dev()
    shape, dtype, ndim = (2,), np.dtype(np.float32), 1


def test_inputs_on_two_devices_are_refused_with_pytorch_message():
    a = torch.ones(2)
    b = torch.ones(2)
    b._data = _OtherDeviceArray()
    with pytest.raises(RuntimeError, match="add: Expected all tensors to be on the same device, but found at least "
                                           "two devices, cpu and cuda:0!"):
        torch.add(a, b)


def test_observers_see_each_op_once_with_shapes_and_times():
    events = []

    def observe(name, inputs, attrs, outputs, t0, t1):
        events.append((name, [tuple(t.shape) for t in inputs if isinstance(t, torch.Tensor)],
                       [tuple(t.shape) for t in outputs], attrs, t1 >= t0))
        torch.ones(1) + 1  # ops run by an observer are not observed

    x = torch.ones(2, 3)
    with O.add_observer(observe):
        Cube.apply(x)
        torch.add(x, 1.0, alpha=2)
    torch.mul(x, x)  # after removal: not seen
    assert events == [("cube", [(2, 3)], [(2, 3)], {}, True), ("add", [(2, 3)], [(2, 3)], {"alpha": 2}, True)]
    assert not O.observing()


def test_anomaly_mode_records_the_forward_trace_on_op_nodes():
    with torch.autograd.detect_anomaly(check_nan=False):
        y = Cube.apply(_x(1.0))
    assert "Cube.apply" in y.grad_fn._trace or "test_anomaly_mode" in y.grad_fn._trace


def test_both_backward_forms_agree_under_gradcheck():
    x, w = _x(0.4, -1.3), _x(2.0, 0.7)

    def f(a, b):
        return Scale.apply(a, b, k=1.5)

    Scale.calls.update(arrays=0, tensor=0)
    assert torch.autograd.gradcheck(f, (x, w))
    assert Scale.calls["arrays"] > 0 and Scale.calls["tensor"] == 0
    with O.array_backward(False):
        assert torch.autograd.gradcheck(f, (x, w))
    assert Scale.calls["tensor"] > 0
    # create_graph builds the higher-order graph through the Tensor form
    Scale.calls.update(arrays=0, tensor=0)
    (gx,) = torch.autograd.grad(f(x, w).sum(), x, create_graph=True)
    assert Scale.calls == {"arrays": 0, "tensor": 1} and gx.requires_grad


def _view_ops():
    def walk(c):
        for s in c.__subclasses__():
            yield s
            yield from walk(s)
    return sorted({c for c in walk(O.Op) if c.view}, key=lambda c: c.__qualname__)


def test_view_forwards_write_to_self_only_while_recording():
    """Calls without a graph share one instance per view class (Op._fwd0): its forward may store state only
    under ``if self.next_functions`` (checked in the source), and the shared instances stay empty."""
    import ast
    import inspect
    import textwrap

    views = _view_ops()
    assert len(views) >= 5
    for cls in views:
        fn = cls.forward
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))

        def writes(node, guarded):
            for ch in ast.iter_child_nodes(node):
                if isinstance(ch, ast.If) and "next_functions" in ast.unparse(ch.test):
                    for b in ch.body:
                        yield from writes(b, True)
                    for b in ch.orelse:
                        yield from writes(b, guarded)
                    continue
                if isinstance(ch, (ast.Assign, ast.AugAssign)) and not guarded:
                    for t in (ch.targets if isinstance(ch, ast.Assign) else [ch.target]):
                        for n in ast.walk(t):
                            if isinstance(n, ast.Attribute) and getattr(n.value, "id", None) == "self":
                                yield n.attr
                yield from writes(ch, guarded)
        assert list(writes(tree, False)) == [], f"{cls.__qualname__}.forward writes to self without a graph"
    x = torch.randn(3, 4)
    x.t(), x.transpose(0, 1), x.permute(1, 0), x[1], x[:, 1:], x.expand(2, 3, 4), x.unsqueeze(0), x.view(12)
    for cls in views:
        assert cls._fwd0 is not None and cls._fwd0.__self__.__dict__ == {}, cls.__qualname__


def test_quiet_ufunc_falls_back_when_its_context_is_busy():
    """Binary ops silence NumPy's overflow warning through a shared context; re-entering it (as another thread
    would find it busy) takes the slower path, still silent (pytest turns RuntimeWarning into errors here)."""
    from disttorch.ops._helpers import QUIET_RUN

    big = torch.full((3,), 3e38)
    ref = np.full(3, np.inf, dtype=np.float32)
    np.testing.assert_array_equal((big + big).numpy(), ref)
    np.testing.assert_array_equal(QUIET_RUN(lambda: (big + big).numpy()), ref)
    with np.errstate(all="raise"):  # the user's NumPy error state does not leak into ops
        np.testing.assert_array_equal((big * big).numpy(), ref)


def test_apply_view_fast_path_keeps_view_semantics_and_falls_back():
    """x[i] without a graph takes apply_view's short path: still a view (shared version counter and base);
    with grad, an observer, or a Tensor subclass it goes through apply."""
    x = torch.arange(12.0).reshape(3, 4).clone()
    r = x[1]
    assert r._vc is x._vc and r._base is x and r.grad_fn is None
    r.add_(1)
    assert x._version == 1 and x[1, 0].item() == 5.0
    w = torch.randn(3, 4, requires_grad=True)
    assert w[2].grad_fn.name() == "SelectBackward0"
    seen = []
    h = O.add_observer(lambda name, *a: seen.append(name))
    try:
        x[0], x[1:]
    finally:
        h.remove()
    assert seen == ["select", "slice"]

    class Sub(torch.Tensor):
        pass
    s = torch.ones(2, 2).as_subclass(Sub) if hasattr(torch.Tensor, "as_subclass") else None
    if s is not None:
        assert type(s[0]) is Sub
