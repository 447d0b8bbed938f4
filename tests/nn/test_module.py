"""nn.Module: registration, traversal, state_dict, hooks, conversion, copy and repr."""
import copy
import pickle
from collections import OrderedDict

import numpy as np
import pytest

import disttorch as torch
import disttorch.utils.hooks
from disttorch import nn


class MyLinear(nn.Module):
    """A tiny linear layer: weight, bias, a persistent buffer and a non-persistent one."""

    def __init__(self, i: int, o: int, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.arange(o * i, dtype=torch.float32).reshape(o, i) / 10)
        self.bias = nn.Parameter(torch.zeros(o)) if bias else None
        self.register_buffer("steps", torch.zeros((), dtype=torch.int64))
        self.register_buffer("scratch", torch.zeros(o), persistent=False)

    def forward(self, x):
        y = x @ self.weight.T
        return y if self.bias is None else y + self.bias

    def extra_repr(self) -> str:
        return f"in_features={self.weight.shape[1]}, out_features={self.weight.shape[0]}"


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = MyLinear(2, 3)
        self.block = nn.Module()
        self.block.inner = MyLinear(3, 3, bias=False)
        self.fc2 = MyLinear(3, 1)

    def forward(self, x):
        return self.fc2(self.block.inner(self.fc1(x)))


# ---- registration ---------------------------------------------------------------------------
def test_registration_and_attribute_access():
    m = MyLinear(2, 3)
    assert list(m._parameters) == ["weight", "bias"]
    assert list(m._buffers) == ["steps", "scratch"]
    assert m.weight is m._parameters["weight"]
    assert "weight" not in m.__dict__
    m.plain = 5
    assert m.plain == 5 and "plain" in m.__dict__
    with pytest.raises(AttributeError, match="'MyLinear' object has no attribute 'nope'"):
        m.nope


def test_assigning_tensor_to_parameter_name_raises():
    m = MyLinear(2, 3)
    with pytest.raises(TypeError, match=r"cannot assign 'torch.FloatTensor' as parameter 'weight' "
                                        r"\(torch.nn.Parameter or None expected\)"):
        m.weight = torch.zeros(3, 2)
    m.bias = None
    assert m.bias is None and "bias" in m._parameters
    assert [n for n, _ in m.named_parameters()] == ["weight"]


def test_assigning_non_module_to_child_name_raises():
    net = Net()
    with pytest.raises(TypeError, match="cannot assign 'int' as child module 'fc1'"):
        net.fc1 = 3
    net.fc1 = None
    assert net.fc1 is None


def test_buffer_assignment_and_type_check():
    m = MyLinear(2, 3)
    m.steps = torch.ones((), dtype=torch.int64)
    assert m._buffers["steps"].item() == 1
    with pytest.raises(TypeError, match="cannot assign 'str' as buffer 'steps'"):
        m.steps = "x"
    m.extra = nn.Buffer(torch.ones(2), persistent=False)
    assert "extra" in m._buffers and "extra" in m._non_persistent_buffers_set
    assert type(m.extra) is torch.Tensor
    assert "extra" not in m.state_dict()


def test_register_errors():
    m = MyLinear(2, 3)
    with pytest.raises(KeyError, match="attribute 'weight' already exists"):
        m.register_buffer("weight", torch.zeros(1))
    with pytest.raises(KeyError, match=r"parameter name can.+t contain \"\.\""):
        m.register_parameter("a.b", None)
    with pytest.raises(KeyError, match="empty string"):
        m.register_buffer("", torch.zeros(1))
    with pytest.raises(TypeError, match="parameter name should be a string. Got int"):
        m.register_parameter(1, None)
    with pytest.raises(TypeError, match=r"object to parameter 'p' \(torch.nn.Parameter or None required\)"):
        m.register_parameter("p", torch.zeros(1))
    with pytest.raises(TypeError, match="object to buffer 'b'"):
        m.register_buffer("b", [1.0])
    with pytest.raises(TypeError, match="is not a Module subclass"):
        m.add_module("c", 3)
    with pytest.raises(KeyError, match=r"module name can.+t contain \"\.\", got: a.b"):
        m.add_module("a.b", nn.Module())


def test_non_leaf_parameter_rejected():
    m = nn.Module()
    p = nn.Parameter(torch.ones(2))
    q = nn.Parameter(torch.ones(2))
    q.grad_fn = (p * 2).grad_fn  # a Parameter inside a graph, as Parameter subclasses can produce
    with pytest.raises(ValueError, match="Cannot assign non-leaf Tensor to parameter 'w'"):
        m.register_parameter("w", q)


def test_assign_before_init_raises():
    class Bad(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(torch.ones(1))

    with pytest.raises(AttributeError, match=r"cannot assign parameters before Module.__init__\(\) call"):
        Bad()


def test_reassignment_moves_between_kinds_and_delattr():
    m = nn.Module()
    m.x = nn.Parameter(torch.ones(1))
    del m.x
    m.x = nn.Module()  # the same name now holds a module
    assert "x" in m._modules and "x" not in m._parameters
    del m.x
    assert not hasattr(m, "x")
    m.register_buffer("b", torch.ones(1), persistent=False)
    del m.b
    assert "b" not in m._non_persistent_buffers_set


def test_init_rejects_unexpected_arguments():
    with pytest.raises(TypeError, match="unexpected keyword argument 'foo'"):
        nn.Module(foo=1)
    with pytest.raises(TypeError, match="takes 1 positional argument but 2 were given"):
        nn.Module(1)


# ---- traversal ------------------------------------------------------------------------------
def test_named_parameters_order_and_prefix():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["fc1.weight", "fc1.bias", "block.inner.weight", "fc2.weight", "fc2.bias"]
    assert [n for n, _ in net.named_parameters(prefix="model")][0] == "model.fc1.weight"
    assert list(net.named_parameters(recurse=False)) == []
    assert len(list(net.parameters())) == 5
    assert [n for n, _ in net.named_buffers()] == ["fc1.steps", "fc1.scratch", "block.inner.steps",
                                                   "block.inner.scratch", "fc2.steps", "fc2.scratch"]
    assert len(list(net.buffers(recurse=False))) == 0


def test_shared_parameters_and_modules_deduplicated():
    net = Net()
    net.fc2.weight = net.block.inner.weight
    names = [n for n, _ in net.named_parameters()]
    assert names == ["fc1.weight", "fc1.bias", "block.inner.weight", "fc2.bias"]
    assert len([n for n, _ in net.named_parameters(remove_duplicate=False)]) == 5
    shared = MyLinear(1, 1)
    seq = nn.Module()
    seq.a, seq.b = shared, shared
    assert [n for n, _ in seq.named_modules()] == ["", "a"]
    assert [n for n, _ in seq.named_modules(remove_duplicate=False)] == ["", "a", "b"]
    assert [n for n, _ in seq.named_children()] == ["a"]
    assert len(list(seq.parameters())) == 2


def test_named_modules_children_and_lookup():
    net = Net()
    assert [n for n, _ in net.named_modules()] == ["", "fc1", "block", "block.inner", "fc2"]
    assert [n for n, _ in net.named_modules(prefix="m")] == ["m", "m.fc1", "m.block", "m.block.inner", "m.fc2"]
    assert list(net.children()) == [net.fc1, net.block, net.fc2]
    assert net.get_submodule("block.inner") is net.block.inner
    assert net.get_submodule("") is net
    assert net.get_parameter("block.inner.weight") is net.block.inner.weight
    assert net.get_buffer("fc1.steps") is net.fc1.steps
    with pytest.raises(AttributeError, match="Module has no attribute `nope`"):
        net.get_submodule("block.nope")
    with pytest.raises(AttributeError, match="`weight` is not an nn.Module"):
        net.get_submodule("fc1.weight")
    with pytest.raises(AttributeError, match="`steps` is not an nn.Parameter"):
        net.get_parameter("fc1.steps")
    net.set_submodule("block.inner", MyLinear(3, 3))
    assert net.block.inner.bias is not None


def test_apply_visits_children_first():
    net = Net()
    seen = []
    assert net.apply(lambda m: seen.append(type(m).__name__)) is net
    assert seen == ["MyLinear", "MyLinear", "Module", "MyLinear", "Net"]


def test_train_eval_recursive():
    net = Net()
    assert net.training and net.block.inner.training
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    with pytest.raises(ValueError, match="training mode is expected to be boolean"):
        net.train("yes")


def test_requires_grad_and_zero_grad():
    net = Net()
    net.requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters())
    net.requires_grad_()
    net(torch.ones(4, 2)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.detach().numpy().any() for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_dir_lists_registered_names():
    net = Net()
    d = dir(net)
    assert {"fc1", "block", "fc2", "forward", "training"} <= set(d)
    assert d == sorted(d)


# ---- forward / call ---------------------------------------------------------------------------
def test_missing_forward_raises():
    with pytest.raises(NotImplementedError, match=r'Module \[Module\] is missing the required "forward" function'):
        nn.Module()(torch.ones(1))


def test_forward_numerics():
    m = MyLinear(2, 3)
    x = np.array([[1.0, 2.0]], np.float32)
    expected = x @ (np.arange(6, dtype=np.float32).reshape(3, 2) / 10).T
    np.testing.assert_allclose(m(torch.tensor(x)).detach().numpy(), expected, rtol=1e-6)


# ---- hooks ------------------------------------------------------------------------------------
def test_forward_hooks_order_prepend_and_removal():
    m = MyLinear(2, 3)
    calls = []
    h1 = m.register_forward_pre_hook(lambda mod, args: calls.append("pre1"))
    m.register_forward_pre_hook(lambda mod, args: calls.append("pre0"), prepend=True)
    m.register_forward_hook(lambda mod, args, out: calls.append("post1"))
    h2 = m.register_forward_hook(lambda mod, args, out: calls.append("post0"), prepend=True)
    m(torch.ones(1, 2))
    assert calls == ["pre0", "pre1", "post0", "post1"]
    h1.remove()
    h2.remove()
    h2.remove()  # removing twice is a no-op
    calls.clear()
    m(torch.ones(1, 2))
    assert calls == ["pre0", "post1"]
    assert isinstance(h1, disttorch.utils.hooks.RemovableHandle)


def test_hooks_modify_input_and_output():
    m = MyLinear(2, 3)
    m.register_forward_pre_hook(lambda mod, args: args[0] * 0)  # a single value is wrapped in a tuple
    out = m(torch.ones(1, 2))
    assert not out.detach().numpy().any()
    m2 = MyLinear(2, 3)
    m2.register_forward_hook(lambda mod, args, out: out + 1)
    np.testing.assert_allclose(m2(torch.zeros(1, 2)).detach().numpy(), np.ones((1, 3)))


def test_hooks_with_kwargs():
    class KW(nn.Module):
        def forward(self, x, scale=1.0):
            return x * scale

    m = KW()
    seen = {}

    def pre(mod, args, kwargs):
        return args, {"scale": kwargs.get("scale", 1.0) * 10}

    def post(mod, args, kwargs, out):
        seen["kwargs"] = kwargs
        return out + 1

    m.register_forward_pre_hook(pre, with_kwargs=True)
    m.register_forward_hook(post, with_kwargs=True)
    out = m(torch.ones(2), scale=2.0)
    np.testing.assert_allclose(out.numpy(), [21.0, 21.0])
    assert seen["kwargs"] == {"scale": 20.0}
    m2 = KW()
    m2.register_forward_pre_hook(lambda mod, a, k: 5, with_kwargs=True)
    with pytest.raises(RuntimeError, match="forward pre-hook must return None or a tuple"):
        m2(torch.ones(1))


def test_always_call_hook_runs_on_error():
    class Boom(nn.Module):
        def forward(self, x):
            raise ValueError("boom")

    m = Boom()
    calls = []
    m.register_forward_hook(lambda mod, a, o: calls.append("always"), always_call=True)
    m.register_forward_hook(lambda mod, a, o: calls.append("normal"))
    with pytest.raises(ValueError, match="boom"):
        m(torch.ones(1))
    assert calls == ["always"]


def test_handle_as_context_manager():
    m = MyLinear(1, 1)
    with m.register_forward_hook(lambda *a: None):
        assert len(m._forward_hooks) == 1
    assert len(m._forward_hooks) == 0


def test_full_backward_hook_sees_and_replaces_grads():
    m = MyLinear(2, 3)
    seen = {}

    def hook(mod, grad_input, grad_output):
        seen["gi"], seen["go"] = grad_input, grad_output
        return (grad_input[0] * 0,)

    m.register_full_backward_hook(hook)
    x = torch.ones(1, 2, requires_grad=True)
    m(x).sum().backward()
    np.testing.assert_allclose(seen["go"][0].numpy(), np.ones((1, 3)))
    w = np.arange(6, dtype=np.float32).reshape(3, 2) / 10
    np.testing.assert_allclose(seen["gi"][0].numpy(), np.ones((1, 3)) @ w, rtol=1e-6)
    assert not x.grad.numpy().any()
    np.testing.assert_allclose(m.weight.grad.numpy(), np.ones((3, 2)))
    with pytest.raises(RuntimeError, match="Cannot use both regular backward hooks and full"):
        m.register_backward_hook(lambda *a: None)


def test_full_backward_hook_without_input_grad_and_pre_hook():
    m = MyLinear(2, 3)
    seen = []
    m.register_full_backward_pre_hook(lambda mod, go: (go[0] * 2,))
    m.register_full_backward_hook(lambda mod, gi, go: seen.append((gi, go)))
    m(torch.ones(1, 2)).sum().backward()
    (gi, go), = seen
    assert gi == (None,)
    np.testing.assert_allclose(go[0].numpy(), np.full((1, 3), 2.0))
    np.testing.assert_allclose(m.bias.grad.numpy(), [2.0, 2.0, 2.0])


def test_full_backward_hook_multiple_inputs_and_outputs():
    class Two(nn.Module):
        def forward(self, a, b):
            return a * b, a + b

    m = Two()
    seen = []
    m.register_full_backward_hook(lambda mod, gi, go: seen.append((gi, go)))
    a = torch.tensor([1.0, 2.0], requires_grad=True)
    b = torch.tensor([3.0, 4.0])
    o1, o2 = m(a, b)
    (o1.sum() + 2 * o2.sum()).backward()
    (gi, go), = seen
    assert gi[1] is None  # b does not require grad
    np.testing.assert_allclose(gi[0].numpy(), [5.0, 6.0])
    np.testing.assert_allclose(go[1].numpy(), [2.0, 2.0])
    np.testing.assert_allclose(a.grad.numpy(), [5.0, 6.0])


def test_old_backward_hook_on_output_grad_fn():
    m = MyLinear(2, 1)
    seen = []
    m.register_backward_hook(lambda mod, gi, go: seen.append(go))
    m(torch.ones(1, 2)).sum().backward()
    np.testing.assert_allclose(seen[0][0].numpy(), [[1.0]])


# ---- state dict -------------------------------------------------------------------------------
def test_state_dict_keys_values_and_metadata():
    net = Net()
    sd = net.state_dict()
    assert isinstance(sd, OrderedDict)
    assert list(sd) == ["fc1.weight", "fc1.bias", "fc1.steps", "block.inner.weight", "block.inner.steps",
                        "fc2.weight", "fc2.bias", "fc2.steps"]
    assert type(sd["fc1.weight"]) is torch.Tensor and not sd["fc1.weight"].requires_grad
    sd["fc1.weight"].add_(1.0)  # references, not copies
    np.testing.assert_allclose(net.fc1.weight.detach().numpy()[0], [1.0, 1.1])
    assert sd._metadata[""] == {"version": 1} and "block.inner" in sd._metadata
    kept = net.state_dict(keep_vars=True)
    assert kept["fc1.weight"] is net.fc1.weight
    assert list(net.fc1.state_dict(prefix="p.")) == ["p.weight", "p.bias", "p.steps"]


def test_state_dict_round_trip():
    a, b = Net(), Net()
    for p in b.parameters():
        p.data.mul_(0.0)
    b.fc1.steps.fill_(7)
    result = a.load_state_dict(b.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert repr(result) == "<All keys matched successfully>"
    for (na, pa), (nb, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert na == nb
        np.testing.assert_array_equal(pa.numpy(), pb.numpy())
    assert a.fc1.steps.item() == 7


def test_load_state_dict_missing_unexpected_and_strict_false():
    net = Net()
    sd = net.state_dict()
    del sd["fc2.bias"]
    sd["fc2.extra"] = torch.zeros(1)
    sd["nope.weight"] = torch.zeros(1)
    msg = ('Error(s) in loading state_dict for Net:\n\tMissing key(s) in state_dict: "fc2.bias". \n\t'
           'Unexpected key(s) in state_dict: "nope.weight", "fc2.extra". ')
    with pytest.raises(RuntimeError) as info:
        net.load_state_dict(sd)
    assert str(info.value) == msg
    res = net.load_state_dict(sd, strict=False)  # loads what matches, still reports the rest
    assert res.missing_keys == ["fc2.bias"] and res.unexpected_keys == ["nope.weight", "fc2.extra"]
    assert repr(res) == "_IncompatibleKeys(missing_keys=['fc2.bias'], unexpected_keys=['nope.weight', 'fc2.extra'])"


def test_load_state_dict_size_mismatch_message():
    m = MyLinear(2, 3)
    sd = m.state_dict()
    sd["weight"] = torch.zeros(2, 2)
    with pytest.raises(RuntimeError) as info:
        m.load_state_dict(sd)
    assert str(info.value) == (
        "Error(s) in loading state_dict for MyLinear:\n\tsize mismatch for weight: copying a param with shape "
        "disttorch.Size([2, 2]) from checkpoint, the shape in current model is disttorch.Size([3, 2]).")
    with pytest.raises(RuntimeError, match="size mismatch"):
        m.load_state_dict(sd, strict=False)


def test_load_state_dict_bad_values():
    m = MyLinear(1, 1)
    with pytest.raises(TypeError, match="Expected state_dict to be dict-like"):
        m.load_state_dict([1, 2])
    sd = m.state_dict()
    sd["weight"] = [[1.0]]
    with pytest.raises(RuntimeError, match='While copying the parameter named "weight", expected torch.Tensor'):
        m.load_state_dict(sd)


def test_load_state_dict_copies_in_place_and_casts():
    m = MyLinear(2, 1)
    w = m.weight
    m.load_state_dict({"weight": torch.tensor([[3.0, 4.0]], dtype=torch.float64), "bias": torch.ones(1),
                       "steps": torch.tensor(2)})
    assert m.weight is w and w.dtype is torch.float32
    np.testing.assert_array_equal(w.detach().numpy(), [[3.0, 4.0]])


def test_load_state_dict_assign():
    m = MyLinear(2, 1)
    new_w = torch.tensor([[5.0, 6.0]], dtype=torch.float64)
    m.load_state_dict({"weight": new_w, "bias": torch.ones(1), "steps": torch.tensor(2)}, assign=True)
    assert isinstance(m.weight, nn.Parameter) and m.weight.dtype is torch.float64 and m.weight.requires_grad
    new_w.add_(1.0)  # assign shares memory with the state dict's tensor
    np.testing.assert_array_equal(m.weight.detach().numpy(), [[6.0, 7.0]])


def test_load_and_state_dict_hooks_and_overrides():
    class Versioned(MyLinear):
        _version = 2

        def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing, unexpected, errors):
            if local_metadata.get("version", None) is None:
                state_dict.setdefault(prefix + "steps", torch.tensor(42))
            super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing, unexpected, errors)

    m = Versioned(1, 1)
    assert m.state_dict()._metadata[""] == {"version": 2}
    plain = {"weight": torch.ones(1, 1), "bias": torch.ones(1)}  # no _metadata: an "old" checkpoint
    m.load_state_dict(plain)
    assert m.steps.item() == 42
    seen = []
    m.register_load_state_dict_post_hook(lambda mod, keys: seen.append(list(keys.missing_keys)))
    m.register_load_state_dict_pre_hook(lambda mod, sd, prefix, *rest: seen.append(mod is m))
    m.register_state_dict_pre_hook(lambda mod, prefix, keep_vars: seen.append("sd-pre"))

    def drop_steps(mod, sd, prefix, meta):
        del sd[prefix + "steps"]

    m.register_state_dict_post_hook(drop_steps)
    sd = m.state_dict()
    assert "steps" not in sd and seen == ["sd-pre"]
    res = m.load_state_dict(sd, strict=False)
    assert res.missing_keys == ["steps"] and seen[1:] == [True, ["steps"]]


def test_extra_state_round_trip():
    class WithExtra(MyLinear):
        def get_extra_state(self):
            return {"note": self.note}

        def set_extra_state(self, state):
            self.note = state["note"]

    a, b = WithExtra(1, 1), WithExtra(1, 1)
    a.note, b.note = "hello", ""
    sd = a.state_dict()
    assert sd["_extra_state"] == {"note": "hello"}
    b.load_state_dict(sd)
    assert b.note == "hello"


# ---- conversion -------------------------------------------------------------------------------
def test_to_float64_keeps_parameter_identity_and_converts_grads():
    net = Net()
    net(torch.ones(2, 2)).sum().backward()
    params = list(net.parameters())
    assert net.to(torch.float64) is net
    assert [id(p) for p in net.parameters()] == [id(p) for p in params]
    for p in net.parameters():
        assert type(p) is nn.Parameter and p.dtype is torch.float64 and p.grad.dtype is torch.float64
        assert p.requires_grad and p.is_leaf
    assert net.fc1.steps.dtype is torch.int64  # integer buffers keep their dtype
    assert net.fc1.scratch.dtype is torch.float64
    assert net(torch.ones(1, 2, dtype=torch.float64)).dtype is torch.float64


@pytest.mark.parametrize("call, dtype, int_dtype", [
    (lambda m: m.to(dtype=torch.float64), torch.float64, torch.int64),
    (lambda m: m.to("cpu", torch.float16), torch.float16, torch.int64),
    (lambda m: m.to(torch.zeros(1, dtype=torch.bfloat16)), torch.bfloat16, torch.int64),
    (lambda m: m.to(torch.float64, non_blocking=True), torch.float64, torch.int64),
    (lambda m: m.double(), torch.float64, torch.int64),
    (lambda m: m.half(), torch.float16, torch.int64),
    (lambda m: m.bfloat16(), torch.bfloat16, torch.int64),
    (lambda m: m.double().float(), torch.float32, torch.int64),
    (lambda m: m.cpu(), torch.float32, torch.int64),
    (lambda m: m.type(torch.float64), torch.float64, torch.float64),  # type() casts every tensor
])
def test_conversions(call, dtype, int_dtype):
    m = MyLinear(2, 2)
    assert call(m) is m
    assert m.weight.dtype is dtype and m.scratch.dtype is dtype
    assert m.steps.dtype is int_dtype


def test_to_rejects_integer_dtype():
    with pytest.raises(TypeError, match="nn.Module.to only accepts floating point or complex dtypes, but got "
                                        "desired dtype=disttorch.int64"):
        MyLinear(1, 1).to(torch.int64)


def test_share_memory_returns_self():
    m = MyLinear(1, 1)
    assert m.share_memory() is m


# ---- copy, pickle ------------------------------------------------------------------------------
def test_deepcopy_is_independent():
    net = Net()
    net.fc2.weight = net.block.inner.weight  # sharing is preserved within the copy
    net(torch.ones(1, 2)).sum().backward()
    calls = []
    net.register_forward_hook(lambda mod, a, o: calls.append(mod))
    c = copy.deepcopy(net)
    assert type(c) is Net and c is not net
    for (n1, p1), (n2, p2) in zip(net.named_parameters(), c.named_parameters()):
        assert n1 == n2 and p1 is not p2 and type(p2) is nn.Parameter
        np.testing.assert_array_equal(p1.detach().numpy(), p2.detach().numpy())
    assert c.fc2.weight is c.block.inner.weight
    assert c.fc1.steps is not net.fc1.steps
    c.fc1.weight.data.add_(1.0)
    c.fc1.steps.fill_(3)
    assert net.fc1.steps.item() == 0
    assert not np.allclose(c.fc1.weight.detach().numpy(), net.fc1.weight.detach().numpy())
    c(torch.ones(1, 2))
    assert calls == [c]


def test_pickle_round_trip():
    m = MyLinear(2, 2)
    m2 = pickle.loads(pickle.dumps(m))
    assert type(m2.weight) is nn.Parameter
    np.testing.assert_array_equal(m2.weight.detach().numpy(), m.weight.detach().numpy())
    assert m2._non_persistent_buffers_set == {"scratch"}


# ---- repr -------------------------------------------------------------------------------------
def test_repr_nested_tree():
    class Empty(nn.Module):
        pass

    class Multi(nn.Module):
        def extra_repr(self):
            return "a=1\nb=2"

    net = Net()
    net.empty = Empty()
    net.multi = Multi()
    net.multi.child = Empty()
    expected = (
        "Net(\n"
        "  (fc1): MyLinear(in_features=2, out_features=3)\n"
        "  (block): Module(\n"
        "    (inner): MyLinear(in_features=3, out_features=3)\n"
        "  )\n"
        "  (fc2): MyLinear(in_features=3, out_features=1)\n"
        "  (empty): Empty()\n"
        "  (multi): Multi(\n"
        "    a=1\n"
        "    b=2\n"
        "    (child): Empty()\n"
        "  )\n"
        ")"
    )
    assert repr(net) == expected
    assert str(Empty()) == "Empty()"
    assert repr(Multi()) == "Multi(\n  a=1\n  b=2\n)"
