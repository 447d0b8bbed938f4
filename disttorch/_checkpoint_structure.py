"""Check a checkpoint's msgpack structure before anything decodes it: nesting depth, tags, extents.

``disttorch.save`` writes the Python structure around the tensors as msgpack, with extension types ("tags")
for tuples, OrderedDicts, tensors, objects... Decoding an extension recurses (the decoder unpacks the payload
from msgpack's ext hook), so a deeply nested file could exhaust the C stack. :func:`check` walks the bytes
with an explicit stack, never recursing, and refuses the structure before decoding when

- it nests deeper than ``max_depth`` levels (the error names the path where the limit was hit),
- it uses a tag disttorch does not write (msgpack's own timestamp type included) or a reserved byte,
- an item or an extension's payload runs past its end, or bytes are left over,
- a map key is a list or a dict (unhashable).

Depth counts the containers a user sees, not the wrappers of the encoding: each list, dict, tuple, set,
frozenset, Size, OrderedDict, tensor, object, enum and slice is one level (an object's ``__dict__`` and an
OrderedDict's item pairs are part of that one level); strings, numbers, dtypes, devices and references none.
``save`` runs the same check on what it wrote, so it refuses exactly what ``load`` would refuse.
"""
from __future__ import annotations

import msgpack

from ._checkpoint_config import CheckpointError

# Extension codes (the on-disk tags; serialization.py encodes and decodes them).
TUPLE, TENSOR, DTYPE, DEVICE, SIZE, ODICT, SET, FROZENSET, COMPLEX, BIGINT, GLOBAL, OBJECT, REF, NDARRAY, \
    NPSCALAR, ENUM, SLICE, RANGE = range(1, 19)
TAG_NAMES = {TUPLE: "tuple", TENSOR: "Tensor", DTYPE: "dtype", DEVICE: "device", SIZE: "Size",
             ODICT: "OrderedDict", SET: "set", FROZENSET: "frozenset", COMPLEX: "complex", BIGINT: "int",
             GLOBAL: "global", OBJECT: "object", REF: "object reference", NDARRAY: "ndarray",
             NPSCALAR: "numpy scalar", ENUM: "enum", SLICE: "slice", RANGE: "range"}
# Tags whose payload holds scalars only (a top-level array at most): no level, nothing nested.
LEAF_TAGS = frozenset({DTYPE, DEVICE, BIGINT, GLOBAL, REF, NDARRAY, COMPLEX, NPSCALAR, RANGE})

# Frame roles: how the containers inside a frame count.
_GEN, _LEAF, _ODICT_TOP, _PAIRS, _TENSOR_TOP, _OBJ_TOP, _OBJ_EXTRA, _EXT = range(8)

# First byte -> (kind, size): kind 0 scalar of `size` bytes in all, 1 fixstr, 2 str/bin with a `size`-byte length,
# 3 fixarray, 4 array with a `size`-byte count, 5 fixmap, 6 map with a `size`-byte count, 7 fixext of `size`
# payload bytes, 8 ext with a `size`-byte length, 9 invalid.
_TABLE = [(0, 1)] * 0x80 + [(5, 0)] * 0x10 + [(3, 0)] * 0x10 + [(1, 0)] * 0x20 + [
    (0, 1), (9, 0), (0, 1), (0, 1),  # nil, (never used), false, true
    (2, 1), (2, 2), (2, 4),  # bin 8/16/32
    (8, 1), (8, 2), (8, 4),  # ext 8/16/32
    (0, 5), (0, 9),  # float 32/64
    (0, 2), (0, 3), (0, 5), (0, 9), (0, 2), (0, 3), (0, 5), (0, 9),  # uint, int 8..64
    (7, 1), (7, 2), (7, 4), (7, 8), (7, 16),  # fixext 1..16
    (2, 1), (2, 2), (2, 4),  # str 8/16/32
    (4, 2), (4, 4), (6, 2), (6, 4),  # array 16/32, map 16/32
] + [(0, 1)] * 0x20


def check(data: bytes, max_depth: int, where: str, limit_hint: str) -> None:
    """Raise CheckpointError unless ``data`` is one well-formed structure at most ``max_depth`` levels deep.

    Args:
        data: the msgpack bytes of a checkpoint structure.
        max_depth: the nesting limit.
        where: names the file (or the call) in error messages.
        limit_hint: appended to the depth error: how to raise the limit.
    """
    data = bytes(data)
    table, size = _TABLE, len(data)
    # A frame: [items left, region end, level of its items, role, index of the next item, is map, start of the
    # current map key (or of item 0), tag (ext frames), flag (OBJ_EXTRA: items are pairs; ext: an item pair)].
    stack = [[1, size, 0, _GEN, 0, False, 0, 0, False]]
    pos = 0
    while stack:
        f = stack[-1]
        if f[0] == 0:
            stack.pop()
            if f[3] == _EXT and pos != f[1]:
                _fail(where, f"a {TAG_NAMES[f[7]]} record has {f[1] - pos} bytes left over", stack, data)
            continue
        f[0] -= 1
        idx = f[4]
        f[4] = idx + 1
        end = f[1]
        if pos >= end:
            _fail(where, "truncated structure", stack, data)
        is_key = f[5] and not idx & 1
        if is_key or idx == 0:  # remembered for error paths: a map's key, a pair's key
            f[6] = pos
        b = data[pos]
        kind, n = table[b]
        if kind == 0:
            pos += n
            if not f[5] and f[3] != _LEAF:
                # A run of fixed-size scalars in a list (numbers, None, bools): skip it in one tight loop.
                left = f[0]
                while left and pos < end:
                    kind, n = table[data[pos]]
                    if kind:
                        break
                    pos += n
                    left -= 1
                f[4] += f[0] - left
                f[0] = left
        elif kind == 1:
            if f[3] == _OBJ_EXTRA and idx == 0:
                f[8] = data[pos + 1:pos + 1 + (b & 0x1F)] == b"dict"
            pos += 1 + (b & 0x1F)
        elif kind == 2:
            if pos + 1 + n > end:
                _fail(where, "truncated structure", stack, data)
            pos += 1 + n + int.from_bytes(data[pos + 1:pos + 1 + n], "big")
        elif kind in (3, 4, 5, 6):
            if kind == 3 or kind == 5:
                count = b & 0x0F
                pos += 1
            else:
                if pos + 1 + n > end:
                    _fail(where, "truncated structure", stack, data)
                count = int.from_bytes(data[pos + 1:pos + 1 + n], "big")
                pos += 1 + n
            is_map = kind >= 5
            if is_key:
                _fail(where, "a map key is a list or a dict (unhashable)", stack, data)
            if f[3] == _LEAF:
                _fail(where, "a scalar record holds a container", stack, data)
            transparent, role = _child_rule(f, idx, is_map)
            level = f[2]
            if not transparent:
                level += 1
                if level > max_depth:
                    _depth_fail(where, max_depth, stack, data, limit_hint)
            if count > end - pos:  # every item takes at least one byte
                _fail(where, "truncated structure", stack, data)
            stack.append([count * 2 if is_map else count, end, level, role, 0, is_map, 0, 0, False])
            continue
        elif kind == 7 or kind == 8:
            if kind == 7:
                length, head = n, 1
            else:
                if pos + 1 + n > end:
                    _fail(where, "truncated structure", stack, data)
                length, head = int.from_bytes(data[pos + 1:pos + 1 + n], "big"), 1 + n
            if pos + head >= end:
                _fail(where, "truncated structure", stack, data)
            tag = data[pos + head]
            if tag not in TAG_NAMES:
                _fail(where, f"unknown tag {tag if tag < 128 else tag - 256}", stack, data)
            if f[3] == _LEAF:
                _fail(where, "a scalar record holds a tagged value", stack, data)
            start = pos + head + 1
            stop = start + length
            if stop > end:
                _fail(where, f"truncated {TAG_NAMES[tag]} record", stack, data)
            level = f[2]
            pair = f[3] == _PAIRS and tag == TUPLE  # an OrderedDict item (key, value): part of its level
            if tag not in LEAF_TAGS and not pair:
                level += 1
                if level > max_depth:
                    _depth_fail(where, max_depth, stack, data, limit_hint)
            if length == 0:
                _fail(where, f"empty {TAG_NAMES[tag]} record", stack, data)
            pos = start
            stack.append([2 if tag == OBJECT else 1, stop, level, _EXT, 0, False, 0, tag, pair])
            continue
        else:
            _fail(where, f"invalid byte 0x{b:02x}", stack, data)
        if pos > end:
            _fail(where, "truncated structure", stack, data)
    if pos != size:
        raise CheckpointError(f"{where}: corrupted structure ({size - pos} bytes left over after it)")


def _child_rule(f: list, idx: int, is_map: bool) -> tuple:
    """(transparent, role) for a container that is item ``idx`` of frame ``f``."""
    role = f[3]
    if role == _GEN:
        return False, _GEN
    if role == _EXT:
        tag = f[7]
        if tag in LEAF_TAGS:
            return True, _LEAF
        if tag == ODICT:
            return True, _ODICT_TOP
        if tag == TENSOR:
            return True, _TENSOR_TOP
        if tag == OBJECT:
            return (True, _OBJ_TOP) if idx == 1 else (False, _GEN)
        return True, _GEN  # tuple, Size, set, frozenset, enum, slice: the payload array is the value's items
    if role == _ODICT_TOP:
        return (True, _PAIRS) if idx == 0 else (True, _GEN)
    if role == _PAIRS:  # pairs written as lists (the encoder writes tuples: see `pair` in check)
        return True, _GEN
    if role == _TENSOR_TOP:
        return (True, _GEN) if idx == 4 else (False, _GEN)
    if role == _OBJ_TOP:
        if idx == 1 and is_map:
            return True, _GEN  # the object's __dict__
        if idx == 2:
            return True, _OBJ_EXTRA
        return False, _GEN
    if role == _OBJ_EXTRA:
        return True, (_PAIRS if f[8] else _GEN)
    return False, _LEAF


def _fail(where: str, what: str, stack: list, data: bytes):
    raise CheckpointError(f"{where}: corrupted structure ({what} at {_path(stack, data)})")


def _depth_fail(where: str, max_depth: int, stack: list, data: bytes, limit_hint: str):
    raise CheckpointError(f"{where}: nesting depth exceeds the limit max_depth={max_depth} at "
                          f"{_path(stack, data)} ({limit_hint})")


def _key_repr(data: bytes, pos: int) -> str:
    up = msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=256)
    up.feed(data[pos:pos + 256])
    try:
        key = up.unpack()
    except Exception:  # noqa: BLE001 - only for the message; the structure is already known to be bad
        return "[<key>]"
    if isinstance(key, msgpack.ExtType):
        return f"[<{TAG_NAMES.get(key.code, 'tagged')} key>]"
    text = repr(key)
    return f"[{text[:40] + '...' if len(text) > 40 else text}]"


def _path(stack: list, data: bytes) -> str:
    """Where the scan stands, in the user's terms: root['model'][3]<tuple>[0]..., shortened when long."""
    parts = []
    for depth, f in enumerate(stack):
        idx = f[4] - 1
        role = f[3]
        if depth == 0:
            continue
        parent = stack[depth - 1]
        if role == _EXT:
            if not f[8]:
                parts.append(f"<{TAG_NAMES[f[7]]}>")
        elif f[5]:
            parts.append(_key_repr(data, f[6]) if idx & 1 else "<key>")
        elif role == _GEN and parent[3] == _EXT and parent[8]:  # an OrderedDict (or dict object) item: its key
            parts.append(_key_repr(data, f[6]) if idx == 1 else "<key>")
        elif role == _GEN:
            parts.append(f"[{idx}]")
    if len(parts) > 14:
        parts = parts[:8] + [f"...({len(parts) - 12} more)..."] + parts[-4:]
    return "root" + "".join(parts)



_SCALARS = (type(None), bool, int, float, str, bytes)
_CONTAINERS = (dict, list, tuple, set, frozenset)


def check_objects(obj, leaves: tuple, max_depth: int, where: str) -> None:
    """Check a built result (the ``.pt`` reader's): only containers, scalars and ``leaves`` (which count one
    level, as tensors do in disttorch files), no cycles, at most ``max_depth`` levels; shared parts once."""
    height: dict = {}  # id -> levels at and below an object already checked
    keep = []  # keeps checked objects alive so their ids stay unique
    path: list = []  # (object, children, next child index, label of each child)
    on_path: set = set()

    def enter(o, label) -> None:
        if isinstance(o, leaves):
            if len(path) + 1 > max_depth:
                _objects_depth_fail(where, max_depth, path, label)
            return
        if isinstance(o, _SCALARS):
            return
        if not isinstance(o, _CONTAINERS):
            raise CheckpointError(f"{where}: not a weights-only checkpoint: it builds a {type(o).__name__} at "
                                  f"{_objects_path(path, label)}")
        known = height.get(id(o))
        if known is not None:
            if len(path) + known > max_depth:
                _objects_depth_fail(where, max_depth, path, label)
            return
        if id(o) in on_path:
            raise CheckpointError(f"{where}: the checkpoint's structure contains itself at {_objects_path(path, label)}")
        if len(path) + 1 > max_depth:
            _objects_depth_fail(where, max_depth, path, label)
        if isinstance(o, dict):
            children = [c for kv in o.items() for c in kv]
            labels = [f"[{k!r}]"[:44] if i % 2 else "<key>" for k in o for i in range(2)]
        else:
            children = list(o)
            labels = None
        path.append([o, children, 0, labels, label])
        on_path.add(id(o))

    enter(obj, "")
    while path:
        frame = path[-1]
        o, children, i, labels, _ = frame
        if i < len(children):
            frame[2] = i + 1
            enter(children[i], labels[i] if labels else f"[{i}]")
            continue
        path.pop()
        on_path.discard(id(o))
        below = max((height.get(id(c), 1 if isinstance(c, leaves) else 0) for c in children), default=0)
        height[id(o)] = below + 1
        keep.append(o)


def _objects_path(path: list, label: str) -> str:
    parts = [f[4] for f in path[1:]] + [label]
    if len(parts) > 14:
        parts = parts[:8] + [f"...({len(parts) - 12} more)..."] + parts[-4:]
    return "root" + "".join(parts)


def _objects_depth_fail(where: str, max_depth: int, path: list, label: str):
    raise CheckpointError(f"{where}: nesting depth exceeds the limit max_depth={max_depth} at "
                          f"{_objects_path(path, label)} (set DISTTORCH_CHECKPOINT_MAX_DEPTH or "
                          "disttorch.serialization.set_checkpoint_options(max_depth=...) to raise it)")
