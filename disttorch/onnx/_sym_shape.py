"""ONNX nodes of shape, indexing and joining ops (targets from the traced shapes; dims that change with the
dynamic axes are written as -1 or broadcast 1)."""
from __future__ import annotations

import numpy as np
from onnx import helper

from .errors import OnnxExporterError, UnsupportedOperatorError
from ._graph import is_tensor
from ._registry import register

_BIG = np.iinfo(np.int64).max


@register("view", "reshape", "_unsafe_view", "squeeze", "unsqueeze", "flatten", "unflatten")
def _reshape(e):
    e.node("Reshape", [e.x(0), e.reshape_target(e.oshape(0), e.alt_oshape(0))], [e.out()])


@register("expand")
def _expand(e):
    ishape, target, alt_target = e.shape(0), e.oshape(0), e.alt_oshape(0)
    lead = len(target) - len(ishape)
    shape = []
    for d, (t, a) in enumerate(zip(target, alt_target)):
        src = ishape[d - lead] if d >= lead else None
        if src == t:
            shape.append(1)  # Expand broadcasts: 1 keeps the input's (possibly dynamic) size
        elif t != a:
            raise OnnxExporterError(f"ONNX export: expand (in module '{e.ev.where}') to a size that changes with "
                                    "the dynamic axes is not supported")
        else:
            shape.append(t)
    e.node("Expand", [e.x(0), e.g.ints(shape)], [e.out()])


@register("transpose", "t")
def _transpose(e):
    rank = len(e.shape(0))
    perm = list(range(rank))
    if rank >= 2:
        d0 = e.arg(1, e.attr("d0", 0))
        d1 = e.arg(2, e.attr("d1", 1 if rank > 1 else 0))
        if e.name == "t":
            d0, d1 = 0, 1
        d0, d1 = d0 % rank, d1 % rank
        perm[d0], perm[d1] = perm[d1], perm[d0]
    e.node("Transpose", [e.x(0)], [e.out()], perm=perm)


@register("permute")
def _permute(e):
    dims = e.arg(1, e.attr("dims"))
    rank = len(e.shape(0))
    e.node("Transpose", [e.x(0)], [e.out()], perm=[int(d) % rank for d in dims])


@register("_to_copy", "contiguous")
def _to_copy(e):
    dt = e.odtype()
    e.node("Cast", [e.x(0)], [e.out()], to=helper.np_dtype_to_tensor_dtype(dt))


@register("cat")
def _cat(e):
    tensors = [k for k, a in enumerate(e.ev.inputs) if is_tensor(a)]
    rank = len(e.oshape(0))
    dim = int(e.attr("dim", 0)) % rank
    dt = e.odtype()
    ins = [e.cast_to(e.x(k), e.dtype(k), dt) for k in tensors if e.shape(k) != (0,)]
    e.node("Concat", ins, [e.out()], axis=dim)


@register("stack")
def _stack(e):
    rank = len(e.oshape(0))
    dim = int(e.attr("dim", 0)) % rank
    axes = e.g.ints([dim])
    dt = e.odtype()
    ins = [e.node("Unsqueeze", [e.cast_to(e.x(k), e.dtype(k), dt), axes]) for k in range(len(e.ev.inputs))]
    e.node("Concat", ins, [e.out()], axis=dim)


def _gather_index(e, key) -> bool:
    """Integer index tensors: one (``x[:, idx]``, ``index_select``: ``Gather`` at its dim, the result has idx's
    shape there), or several of one shape on the leading dims (``x[rows, cols]``: ``GatherND``); full slices
    elsewhere. An index computed by traced ops or given as a graph input is a graph value; a constant one an
    initializer. False when the key is not of these forms."""
    if not isinstance(key, tuple):
        return False
    pos = [i for i, k in enumerate(key) if is_tensor(k) or isinstance(k, (list, np.ndarray))]
    if not pos or sum(1 for k in key if k is Ellipsis) > 1:
        return False
    arrs = [np.asarray(getattr(key[i], "_data", key[i])) for i in pos]
    if any(a.dtype.kind not in "iu" for a in arrs):
        return False  # a boolean mask: _mask_index
    rank = len(e.shape(0))
    full: list = []
    for k in key:
        if k is Ellipsis:
            full.extend([slice(None)] * (rank - (len(key) - 1)))
        else:
            full.append(k)
    at = [i for i, k in enumerate(full) if not isinstance(k, slice)]
    if any(not (isinstance(k, slice) and k == slice(None)) for i, k in enumerate(full) if i not in at):
        return False
    alt = e.alt_arg(1, e.alt_attr("key"))
    alts = [alt[i] for i in pos] if isinstance(alt, tuple) and len(alt) == len(key) else [None] * len(pos)
    names = [e.value(key[i], a, "the index tensor") for i, a in zip(pos, alts)]
    if len(at) == 1:
        e.node("Gather", [e.x(0), names[0]], [e.out()], axis=at[0])
        return True
    try:
        bshape = np.broadcast_shapes(*[a.shape for a in arrs])
        alt_bshape = bshape if any(a is None for a in alts) else \
            np.broadcast_shapes(*[np.shape(getattr(a, "_data", a)) for a in alts])
    except ValueError:
        return False
    if bshape != alt_bshape:
        return False  # index tensors broadcast to a shape that changes with the dynamic axes: no mapping
    # NumPy's rule: the index dims S replace adjacent indexed dims in place, and go first when the indexed dims
    # are apart. GatherND indexes leading dims: move the indexed dims first, gather, then move S where it goes.
    rest = [d for d in range(rank) if d not in at]
    x = e.x(0)
    if at != list(range(len(at))):
        x = e.node("Transpose", [x], perm=at + rest)
    cols = []
    for n, a in zip(names, arrs):
        c = e.node("Cast", [n], to=onnx_int64())
        if a.shape != bshape:  # index tensors broadcast against each other, as in NumPy
            c = e.node("Expand", [c, e.g.ints(bshape)])
        cols.append(e.node("Unsqueeze", [c, e.g.ints([-1])]))
    y = e.node("GatherND", [x, e.node("Concat", cols, axis=-1)])
    k = len(bshape)
    adjacent = at == list(range(at[0], at[0] + len(at)))
    if adjacent and at[0] > 0:
        out_perm = [k + i for i in range(at[0])] + list(range(k)) + [k + i for i in range(at[0], len(rest))]
        y = e.node("Transpose", [y], perm=out_perm)
    e.node("Identity", [y], [e.out()])
    return True


def onnx_int64() -> int:
    from onnx import TensorProto

    return TensorProto.INT64


def _mask_index(e, key) -> bool:
    """``x[mask]`` (a boolean mask over all dims) or ``x[..., m, ...]`` (a 1-D mask over one dim, full slices
    elsewhere): ``Compress``. The mask may come from traced ops (``x[x > 0]``): its value name is looked up like
    any other input. False when the key is not of that form."""
    if not isinstance(key, tuple):
        return False
    pos = [i for i, k in enumerate(key) if isinstance(k, np.ndarray) or is_tensor(k)]
    if len(pos) != 1:
        return False
    mask = key[pos[0]]
    arr = np.asarray(getattr(mask, "_data", mask))
    if arr.dtype.kind != "b":
        return False
    rank = len(e.shape(0))
    rest = [k for i, k in enumerate(key) if i != pos[0]]
    if any(not (k is Ellipsis or (isinstance(k, slice) and k == slice(None))) for k in rest):
        return False
    alt = e.alt_arg(1, e.alt_attr("key"))
    alt_mask = alt[pos[0]] if isinstance(alt, tuple) and len(alt) == len(key) else None
    m = e.value(mask, alt_mask, "the boolean index mask")
    before = sum(1 for k in key[:pos[0]] if k is not Ellipsis)
    if Ellipsis in key[:pos[0]]:
        before = rank - arr.ndim - sum(1 for k in key[pos[0] + 1:] if k is not Ellipsis)
    if arr.ndim == rank and before == 0:  # a mask over every dim: a 1-D result in row-major order
        flat = e.node("Reshape", [e.x(0), e.g.ints([-1])])
        e.node("Compress", [flat, e.node("Reshape", [m, e.g.ints([-1])])], [e.out()], axis=0)
        return True
    if arr.ndim == 1:
        e.node("Compress", [e.x(0), m], [e.out()], axis=before)
        return True
    return False


@register("slice", "select", "index", "index_select")
def _index(e):
    key = e.arg(1, e.attr("key"))
    if (e.attr("adv", False) or e.name == "index_select") and (_gather_index(e, key) or _mask_index(e, key)):
        return
    if e.attr("adv", False) or not isinstance(key, tuple) or any(
            is_tensor(k) or isinstance(k, (list, np.ndarray)) for k in key):
        raise UnsupportedOperatorError(f"ONNX export: advanced indexing ('{e.name}' with tensor or list indices, in "
                                       f"module '{e.ev.where}') has no ONNX mapping in disttorch.onnx")
    if key != e.alt_arg(1, e.alt_attr("key")):
        raise OnnxExporterError(f"ONNX export: the index {key} of '{e.name}' (in module '{e.ev.where}') changes "
                                "with the inputs")
    ishape = e.shape(0)
    rank = len(ishape)
    n_real = sum(1 for k in key if k is not None and k is not Ellipsis)
    full = []
    for k in key:
        if k is Ellipsis:
            full.extend([slice(None)] * (rank - n_real))
        else:
            full.append(k)
    full.extend([slice(None)] * (rank - sum(1 for k in full if k is not None)))
    starts, ends, axes, steps, squeeze, unsqueeze = [], [], [], [], [], []
    dim = out_pos = 0
    for k in full:
        if k is None:
            unsqueeze.append(out_pos)
            out_pos += 1
            continue
        if isinstance(k, slice):
            if k != slice(None):
                step = 1 if k.step is None else int(k.step)
                if step < 0:
                    raise UnsupportedOperatorError(f"ONNX export: negative slice step (in module '{e.ev.where}')")
                starts.append(0 if k.start is None else int(k.start))
                ends.append(_BIG if k.stop is None else int(k.stop))
                axes.append(dim)
                steps.append(step)
            out_pos += 1
        else:
            i = int(k)
            starts.append(i)
            ends.append(_BIG if i == -1 else i + 1)
            axes.append(dim)
            steps.append(1)
            squeeze.append(dim)
        dim += 1
    y = e.x(0)
    if axes:
        y = e.node("Slice", [y, e.g.ints(starts), e.g.ints(ends), e.g.ints(axes), e.g.ints(steps)])
    if squeeze:
        y = e.node("Squeeze", [y, e.g.ints(squeeze)])
    if unsqueeze:
        y = e.node("Unsqueeze", [y, e.g.ints(unsqueeze)])
    e.node("Identity", [y], [e.out()])


@register("embedding")
def _embedding(e):
    e.node("Gather", [e.x(0), e.x(1)], [e.out()], axis=0)


@register("constant_pad_nd")
def _constant_pad(e):
    pad = list(e.attr("pad"))
    rank = len(e.shape(0))
    begins, ends = [0] * rank, [0] * rank
    for i in range(len(pad) // 2):  # PyTorch pads the last dim first
        begins[rank - 1 - i], ends[rank - 1 - i] = int(pad[2 * i]), int(pad[2 * i + 1])
    dt = e.odtype()
    e.node("Pad", [e.x(0), e.g.ints(begins + ends), e.scalar(e.attr("value", 0), dt)], [e.out()], mode="constant")


@register("tril", "triu")
def _trilu(e):
    k = e.arg(1, e.attr("k", 0))
    e.node("Trilu", [e.x(0), e.g.const(np.asarray(int(k), np.int64))], [e.out()], upper=int(e.name == "triu"))


@register("flip")
def _flip(e):
    dims = e.attr("dims", None)
    if dims is None:
        dims = (e.attr("dim", 0),)
    rank = len(e.shape(0))
    dims = [int(d) % rank for d in dims]
    n = len(dims)
    e.node("Slice", [e.x(0), e.g.ints([-1] * n), e.g.ints([-_BIG] * n), e.g.ints(dims), e.g.ints([-1] * n)],
           [e.out()])


@register("cumsum")
def _cumsum(e):
    rank = len(e.shape(0))
    axis = e.g.const(np.asarray(int(e.attr("dim", 0)) % rank, np.int64))
    e.node("CumSum", [e.x(0), axis], [e.out()])



@register("split")
def _split(e):
    d = int(e.attr("dim"))
    x = e.x(0)
    for k, (a, b) in enumerate(e.attr("bounds")):
        if tuple(e.alt_attr("bounds")[k]) != (a, b):
            raise OnnxExporterError(f"ONNX export: split (in module '{e.ev.where}') along a dim that changes with "
                                    "the dynamic axes is not supported")
        e.node("Slice", [x, e.g.ints([a]), e.g.ints([b]), e.g.ints([d])], [e.out(k)])


@register("unbind")
def _unbind(e):
    d = int(e.attr("dim"))
    x = e.x(0)
    axes = e.g.ints([d])
    for k in range(len(e.ev.outputs)):
        s = e.node("Slice", [x, e.g.ints([k]), e.g.ints([k + 1]), axes])
        e.node("Squeeze", [s, axes], [e.out(k)])


@register("pixel_shuffle")
def _pixel_shuffle(e):
    r = int(e.arg(1, e.attr("r", 1)))
    if len(e.shape(0)) != 4:
        raise UnsupportedOperatorError(f"ONNX export: pixel_shuffle of a {len(e.shape(0))}-D input (in module "
                                       f"'{e.ev.where}'): only 4-D is mapped")
    e.node("DepthToSpace", [e.x(0)], [e.out()], blocksize=r, mode="CRD")


@register("full")
def _full(e):
    """zeros/ones/full/empty whose size follows the dynamic axes: ConstantOfShape of that size."""
    dt = np.dtype(e.odtype())
    fill = np.array([e.attr("fill")], dtype=dt)
    value = helper.make_tensor("value", helper.np_dtype_to_tensor_dtype(dt), [1], fill.tolist())
    shape = e.size_value(tuple(e.oshape(0)), tuple(e.alt_oshape(0)))
    e.node("ConstantOfShape", [shape], [e.out()], value=value)


@register("arange")
def _arange(e):
    """arange whose length follows the dynamic axes (positions): Range with the end read from the input's shape."""
    start, end, step = e.attr("start"), e.attr("end"), e.attr("step")
    alt_end = e.alt_attr("end")
    if (start, step) != (e.alt_attr("start"), e.alt_attr("step")) or step != 1 or start != 0:
        raise UnsupportedOperatorError(f"ONNX export: arange (in module '{e.ev.where}') with a start or step that "
                                       "changes, or a length other than end: only arange(n) follows dynamic axes")
    dt = np.dtype(e.odtype())
    n = e.size_value((int(end),), (int(alt_end),))
    n = e.node("Squeeze", [n, e.g.ints([0])])
    if dt != np.int64:
        from onnx import TensorProto

        n = e.node("Cast", [n], to=helper.np_dtype_to_tensor_dtype(dt) if dt.kind != "V" else TensorProto.FLOAT)
    e.node("Range", [e.g.const(np.array(0, dtype=dt)), n, e.g.const(np.array(1, dtype=dt))], [e.out()])
