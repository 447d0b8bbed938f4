"""The Tensor: an array plus autograd state.

A Tensor holds a NumPy (or CuPy) array in ``_data``. Operations live in ``disttorch/ops`` by
family; each family contributes a ``*Methods`` mixin so ``x.exp()`` and ``disttorch.exp(x)`` are
one function. The hot path is short: unwrap, compute, wrap, and record a graph node only when
grad mode is on and an input requires grad.
"""
from __future__ import annotations

import weakref
from collections import OrderedDict

import numpy as np

from . import _dtype as D
from ._device import CPU, array_module_of, device, device_of, to_host
from ._size import Size
from .autograd.function import AccumulateGrad
from .autograd.grad_mode import STATE as _GRAD
from .utils.hooks import _add_hook

_new = object.__new__
_weakref = weakref.ref


def _wrap(data) -> "Tensor":
    """Wrap an array (numpy scalars become 0-d arrays) in a new Tensor that requires no grad."""
    if data.__class__ is not np.ndarray and isinstance(data, np.generic):
        data = np.asarray(data)
    t = _new(Tensor)
    t._data = data
    t._requires_grad = False
    t._grad = None
    t.grad_fn = None
    t._output_nr = 0
    t._vc = [0]
    t._base = None
    t._aux = None
    return t


def _device_checks() -> None:
    """A device value reaches the host: report the device ops' pending checks first (disttorch/cuda/_checks.py),
    as a CUDA device-side assert surfaces at the next synchronisation."""
    from .cuda import _checks

    if _checks._PENDING:
        _checks.flush()


def _view_of(base: "Tensor", data) -> "Tensor":
    """Wrap ``data``, a view of ``base``'s memory: the two share a version counter."""
    t = _wrap(data)
    t._vc = base._vc
    t._base = base if base._base is None else base._base
    return t


def needs_grad(*tensors) -> bool:
    """True when grad mode is on and any of ``tensors`` (Tensors or None) requires grad."""
    if not _GRAD.enabled:
        return False
    for t in tensors:
        if t is not None and t._requires_grad:
            return True
    return False


# Method mixins: one per op family (imported here so each family file stays self-contained).
from .ops.activation import ActivationMethods  # noqa: E402
from .ops.compare import CompareMethods  # noqa: E402
from .ops.complex_ops import ComplexMethods  # noqa: E402
from .ops.convert import ConvertMethods  # noqa: E402
from .ops.creation import CreationMethods  # noqa: E402
from .ops.elementwise import ElementwiseMethods  # noqa: E402
from .ops.index import IndexMethods  # noqa: E402
from .ops.join import JoinMethods  # noqa: E402
from .ops.linalg import LinalgMethods  # noqa: E402
from .ops.pointwise import PointwiseMethods  # noqa: E402
from .ops.random import RandomMethods  # noqa: E402
from .ops.rearrange import RearrangeMethods  # noqa: E402
from .ops.reduce import ReduceMethods  # noqa: E402
from .ops.scan import ScanMethods  # noqa: E402
from .ops.scatter_ops import ScatterMethods  # noqa: E402
from .ops.shape import ShapeMethods  # noqa: E402
from .ops.softmax import SoftmaxMethods  # noqa: E402
from .ops.special_fns import SpecialMethods  # noqa: E402
from .ops.sort import SortMethods  # noqa: E402
from .ops.sparse import SparseMethods  # noqa: E402
from .ops._sparse_data import SparseCOO as _SparseCOO  # noqa: E402
from ._layout import sparse_coo as _sparse_coo, strided as _strided  # noqa: E402


class Tensor(ElementwiseMethods, PointwiseMethods, CompareMethods, ReduceMethods, SoftmaxMethods, SortMethods,
             ScanMethods, ShapeMethods, RearrangeMethods, JoinMethods, IndexMethods, ScatterMethods, LinalgMethods,
             ConvertMethods, CreationMethods, RandomMethods, ActivationMethods, ComplexMethods, SpecialMethods,
             SparseMethods):
    """A multi-dimensional array with autograd, as ``torch.Tensor``.

    ``Tensor(data)`` copies a sequence into a default-dtype tensor; ``Tensor(2, 3)`` makes an
    uninitialised one. Prefer ``disttorch.tensor``.
    """

    __slots__ = ("_data", "_requires_grad", "_grad", "grad_fn", "_output_nr", "_vc", "_base", "_aux",
                 "__weakref__")

    def __new__(cls, *args, **kwargs):
        from .ops.creation import _legacy_new

        t = _new(cls)
        src = _legacy_new(*args, **kwargs)
        t._data = src._data
        t._requires_grad = False
        t._grad = None
        t.grad_fn = None
        t._output_nr = 0
        t._vc = [0]
        t._base = None
        t._aux = None
        return t

    def __init__(self, *args, **kwargs) -> None:
        pass

    # ---- array module and metadata -------------------------------------------------------
    @property
    def _xp(self):
        return np if self._data.__class__ is np.ndarray else array_module_of(self._data)  # inline: hot path

    @property
    def shape(self) -> Size:
        return Size(self._data.shape)

    def size(self, dim: int | None = None):
        """The shape as a ``Size``, or the length of dimension ``dim``."""
        if dim is None:
            return Size(self._data.shape)
        return self._data.shape[_wrap_dim(dim, self._data.ndim, "size")]

    @property
    def dtype(self) -> D.dtype:
        return D._FROM_NP[self._data.dtype]

    @property
    def device(self) -> device:
        return CPU if self._data.__class__ is np.ndarray else device_of(self._data)

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def is_cpu(self) -> bool:
        return self.device.type == "cpu"

    @property
    def ndim(self) -> int:
        return self._data.ndim

    def dim(self) -> int:
        return self._data.ndim

    ndimension = dim

    def numel(self) -> int:
        return int(self._data.size)

    nelement = numel

    def element_size(self) -> int:
        return self._data.dtype.itemsize

    @property
    def itemsize(self) -> int:
        return self._data.dtype.itemsize

    @property
    def nbytes(self) -> int:
        return int(self._data.nbytes)

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    @property
    def layout(self):
        """``disttorch.sparse_coo`` for sparse COO tensors, else ``disttorch.strided``."""
        return _sparse_coo if self._data.__class__ is _SparseCOO else _strided

    @property
    def is_sparse(self) -> bool:
        return self._data.__class__ is _SparseCOO

    @property
    def is_quantized(self) -> bool:
        return False

    @property
    def is_meta(self) -> bool:
        return False

    # Device and layout kinds disttorch tensors never have (PyTorch's CPU tensors answer False too).
    @property
    def is_xpu(self) -> bool:
        return False

    @property
    def is_mps(self) -> bool:
        return False

    @property
    def is_mkldnn(self) -> bool:
        return False

    @property
    def is_vulkan(self) -> bool:
        return False

    @property
    def is_ipu(self) -> bool:
        return False

    @property
    def is_hpu(self) -> bool:
        return False

    @property
    def is_mtia(self) -> bool:
        return False

    @property
    def is_maia(self) -> bool:
        return False

    @property
    def is_xla(self) -> bool:
        return False

    @property
    def is_nested(self) -> bool:
        return False

    @property
    def is_sparse_csr(self) -> bool:
        return False

    def is_conj(self) -> bool:
        """False: disttorch materialises conjugates (no lazy conjugate bit)."""
        return False

    def is_neg(self) -> bool:
        """False: disttorch materialises negations (no lazy negative bit)."""
        return False

    def is_distributed(self) -> bool:
        return False

    def is_signed(self) -> bool:
        """True for signed dtypes (all but uint8 and bool)."""
        return self.dtype.is_signed

    def is_same_size(self, other: "Tensor") -> bool:
        """True when ``other`` has the same shape."""
        return tuple(self._data.shape) == tuple(other._data.shape)

    def is_floating_point(self) -> bool:
        return self.dtype.is_floating_point

    def is_complex(self) -> bool:
        return self.dtype.is_complex

    def is_contiguous(self, memory_format=None) -> bool:
        return bool(self._data.flags.c_contiguous)

    def data_ptr(self) -> int:
        return int(self._data.__array_interface__["data"][0]) if self._data.__class__ is np.ndarray \
            else int(self._data.data.ptr)

    def stride(self, dim: int | None = None):
        st = tuple(s // self._data.itemsize for s in self._data.strides)
        return st if dim is None else st[_wrap_dim(dim, self._data.ndim, "stride")]

    def storage_offset(self) -> int:
        return 0

    def get_device(self) -> int:
        d = self.device
        return -1 if d.type == "cpu" else d.index

    @property
    def _version(self) -> int:
        return self._vc[0]

    # ---- shared memory (disttorch/multiprocessing/_segments.py) ------------------------------
    def share_memory_(self) -> "Tensor":
        """Move this tensor's memory to shared memory, in place; returns self.

        The tensor keeps its identity; its views (and ``.data``/``detach()`` aliases) move with it.
        Sent to another process (``torch.multiprocessing``) it is then mapped there, not copied. A
        no-op when already shared and for CUDA tensors. The kind of memory follows
        ``torch.multiprocessing.get_sharing_strategy()``.
        """
        from .multiprocessing import _segments, get_sharing_strategy

        _segments.share_tensors((self,), get_sharing_strategy())
        return self

    def is_shared(self) -> bool:
        """Whether this tensor's memory is shared memory (always True for CUDA tensors, as PyTorch)."""
        if not isinstance(self._data, np.ndarray):
            return True
        from .multiprocessing._segments import segment_of

        return segment_of(self._data) is not None

    # ---- autograd state ------------------------------------------------------------------
    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        if self.grad_fn is not None:
            if not value:
                raise RuntimeError("you can only change requires_grad flags of leaf variables. If you want to use "
                                   "a computed variable in a subgraph that doesn't require differentiation use "
                                   "var_no_grad = var.detach().")
            return
        if value and not (self.dtype.is_floating_point or self.dtype.is_complex):
            raise RuntimeError(f"only Tensors of floating point and complex dtype can require gradients "
                               f"(got {self.dtype})")
        self._requires_grad = bool(value)

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        """Set requires_grad in place; returns self."""
        self.requires_grad = requires_grad
        return self

    @property
    def grad(self):
        return self._grad

    @grad.setter
    def grad(self, value) -> None:
        if value is not None:
            if not isinstance(value, Tensor):
                raise TypeError(f"assigned grad expected to be a Tensor or None but got grad of type "
                                f"{type(value).__name__}")
            if tuple(value.shape) != tuple(self.shape):
                raise RuntimeError(f"assigned grad has data of a different size: grad {list(value.shape)}, "
                                   f"tensor {list(self.shape)}")
            if value.dtype is not self.dtype:
                raise RuntimeError(f"assigned grad has data of a different type ({value.dtype} vs {self.dtype})")
        self._grad = value

    @grad.deleter
    def grad(self) -> None:
        self._grad = None

    @property
    def data(self) -> "Tensor":
        """A tensor sharing this one's memory, detached from the graph (``x.data = y`` swaps the array)."""
        t = _wrap(self._data)
        t._vc = self._vc
        return t

    @data.setter
    def data(self, value: "Tensor") -> None:
        if not isinstance(value, Tensor):
            raise TypeError(f"data must be a Tensor, got {type(value).__name__}")
        self._data = value._data

    def _grad_accumulator(self) -> AccumulateGrad:
        aux = self._aux
        if aux is None:
            aux = self._aux = {}
        else:
            ref = aux.get("acc")
            if ref is not None:
                acc = ref()
                if acc is not None:
                    return acc
        acc = _new(AccumulateGrad)  # AccumulateGrad(self), without the call
        acc.variable = self
        aux["acc"] = _weakref(acc)
        return acc

    def detach(self) -> "Tensor":
        """A new tensor sharing memory (and version counter) with this one, outside the graph."""
        t = _wrap(self._data)
        t._vc = self._vc
        return t

    def detach_(self) -> "Tensor":
        self.grad_fn = None
        self._requires_grad = False
        self._output_nr = 0
        return self

    def retain_grad(self) -> None:
        """Keep ``.grad`` for this non-leaf tensor after backward."""
        if not self._requires_grad:
            raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
        if self.grad_fn is None:
            return
        self.grad_fn.__dict__.setdefault("_retain", {})[self._output_nr] = weakref.ref(self)

    @property
    def retains_grad(self) -> bool:
        fn = self.grad_fn
        return fn is not None and self._output_nr in fn.__dict__.get("_retain", {})

    def register_hook(self, hook):
        """Run ``hook(grad)`` when this tensor's gradient is computed; a returned tensor replaces it.

        Returns a handle with ``remove()``.
        """
        if not self._requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        if self.grad_fn is not None:
            return self.grad_fn._add_tensor_pre_hook(self._output_nr, hook)
        return self._leaf_hook("hooks", hook)

    def register_post_accumulate_grad_hook(self, hook):
        """Run ``hook(tensor)`` after the gradient has been accumulated into this leaf's ``.grad``."""
        if self.grad_fn is not None:
            raise RuntimeError("post accumulate grad hooks cannot be registered on non-leaf tensors")
        if not self._requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        return self._leaf_hook("post_hooks", hook)

    def _leaf_hook(self, kind: str, hook):
        if self._aux is None:
            self._aux = {}
        hooks = self._aux.get(kind)
        if hooks is None:
            hooks = self._aux[kind] = OrderedDict()  # RemovableHandle refers to it weakly (a plain dict is not)
        return _add_hook(hooks, hook)

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad`` (see ``autograd.backward``)."""
        from .autograd.engine import backward

        backward(self, None if gradient is None else (gradient,), retain_graph, create_graph, inputs=inputs)

    # ---- Python protocol -------------------------------------------------------------------
    def __len__(self) -> int:
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    def __iter__(self):
        if self._data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return iter(self.unbind(0))

    def __bool__(self) -> bool:
        if self._data.size != 1:
            raise RuntimeError(f"Boolean value of Tensor with more than one value is ambiguous "
                               f"(shape {list(self.shape)})")
        if self._data.__class__ is not np.ndarray:
            _device_checks()
        return bool(self._data.reshape(()))

    def _scalar(self, kind: str):
        if self._data.size != 1:
            raise RuntimeError(f"only one element tensors can be converted to Python scalars "
                               f"(got shape {list(self.shape)}) in {kind}()")
        if self._data.__class__ is not np.ndarray:
            _device_checks()
        return self._data.reshape(()).item()

    def item(self):
        """The value of a one-element tensor as a Python number."""
        v = self._scalar("item")
        return float(v) if self._data.dtype == D.bfloat16.np else v

    def __float__(self) -> float:
        return float(self._scalar("float"))

    def __int__(self) -> int:
        return int(self._scalar("int"))

    def __complex__(self) -> complex:
        return complex(self._scalar("complex"))

    def __index__(self) -> int:
        if self._data.dtype.kind not in "iub" or self._data.size != 1 or self._data.ndim:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        if self._data.__class__ is not np.ndarray:
            _device_checks()
        return int(self._data)

    def tolist(self):
        """Nested Python lists of Python numbers (a number for a 0-d tensor)."""
        arr = to_host(self._data)
        if arr.dtype == D.bfloat16.np:
            arr = arr.astype(np.float32)
        return arr.tolist()

    def numpy(self, *, force: bool = False) -> np.ndarray:
        """The underlying NumPy array (shared memory) of a CPU tensor that requires no grad."""
        if self._data.__class__ is _SparseCOO:
            raise TypeError("can't convert Sparse layout tensor to numpy. Use Tensor.to_dense() first.")
        if self._requires_grad and not force:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead.")
        if self._xp is not np:
            if not force:
                raise TypeError("can't convert cuda tensor to numpy. Use Tensor.cpu() to copy the tensor to "
                                "host memory first.")
            return to_host(self._data)
        return self._data

    def __array__(self, dtype=None, copy=None):
        if self._data.__class__ is _SparseCOO:
            raise TypeError("can't convert Sparse layout tensor to numpy. Use Tensor.to_dense() first.")
        arr = to_host(self._data)
        return arr if dtype is None else arr.astype(dtype)

    def __hash__(self) -> int:
        return id(self)

    def __deepcopy__(self, memo):
        if not self.is_leaf:
            raise RuntimeError("Only Tensors created explicitly by the user (graph leaves) support the "
                               "deepcopy protocol at the moment.")
        if id(self) in memo:
            return memo[id(self)]
        new = _new(type(self))
        new._data = self._data.copy()
        new._requires_grad = self._requires_grad
        new._grad = None if self._grad is None else self._grad.__deepcopy__(memo)
        new.grad_fn = None
        new._output_nr = 0
        new._vc = [0]
        new._base = None
        new._aux = None
        d = getattr(self, "__dict__", None)
        if d:
            import copy

            new.__dict__.update(copy.deepcopy(d, memo))
        memo[id(self)] = new
        return new

    def __reduce_ex__(self, protocol):
        # Pickling is for processes the job starts itself (DataLoader workers); checkpoints use
        # disttorch.save, which never unpickles.
        arr = to_host(self._data)
        state = getattr(self, "__dict__", None) or None
        return (_rebuild, (type(self), arr, self._requires_grad, state))

    def __repr__(self, *, tensor_contents=None) -> str:
        if self._data.__class__ is _SparseCOO:
            from .ops.sparse import sparse_repr

            return sparse_repr(self)
        from ._tensor_str import tensor_repr

        return tensor_repr(self)

    def __format__(self, spec: str) -> str:
        if self._data.ndim == 0:
            return self.item().__format__(spec)
        return object.__format__(self, spec) if spec else repr(self)

    def __getattr__(self, name: str):
        # Only reached when normal lookup fails: name the gap instead of a bare AttributeError.
        if name.startswith("__") or name in Tensor.__slots__:
            raise AttributeError(name)
        raise AttributeError(f"'Tensor' object has no attribute '{name}': Tensor.{name} is not implemented yet in "
                             "disttorch (see docs/coverage.md)")

    def __dlpack__(self, *, stream=None, max_version=None, dl_device=None, copy=None):
        """Export the tensor's memory as a DLPack capsule (array API standard; zero-copy unless ``copy=True``).

        The keywords are passed to the underlying NumPy/CuPy array, which checks them (on the CPU ``stream`` must
        be None). Only those given are passed, so producers without DLPack 1.0 support still answer.

        Raises:
            BufferError: the tensor requires grad (as PyTorch: export ``tensor.detach()``).
        """
        if self._requires_grad:
            raise BufferError("Can't export tensors that require gradient, use tensor.detach()")
        kwargs = {k: v for k, v in (("stream", stream), ("max_version", max_version), ("dl_device", dl_device),
                                    ("copy", copy)) if v is not None}
        return self._data.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        """``(device type, index)`` of the memory, as DLPack numbers them (1: CPU, 2: CUDA)."""
        return self._data.__dlpack_device__()


def _rebuild(cls, arr, requires_grad, state):
    if cls is Tensor:
        t = _wrap(arr)
    else:
        t = _new(cls)
        t._data, t._grad, t.grad_fn, t._output_nr, t._vc, t._base, t._aux = arr, None, None, 0, [0], None, None
        t._requires_grad = False
    t._requires_grad = requires_grad
    if state:
        t.__dict__.update(state)
    return t


def _wrap_dim(dim: int, ndim: int, op: str) -> int:
    """Normalise a possibly negative dim for a tensor of ``ndim`` dims (0-d tensors accept -1 and 0)."""
    n = max(ndim, 1)
    if not -n <= dim < n:
        raise IndexError(f"{op}: Dimension out of range (expected to be in range of [{-n}, {n - 1}], but got {dim})")
    return dim + n if dim < 0 else dim
