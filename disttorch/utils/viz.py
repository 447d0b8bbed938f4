"""The autograd graph as Graphviz dot text (torchviz's ``make_dot``), for debugging what backward will run."""
from __future__ import annotations

import shutil
import subprocess

__all__ = ["make_dot", "Dot"]


class Dot:
    """Graphviz source: ``.source`` is the dot text; ``save(path)`` writes it; ``render(path, format)`` runs the
    ``dot`` program when it is installed (rendering is optional)."""

    def __init__(self, source: str) -> None:
        self.source = source

    def __str__(self) -> str:
        return self.source

    def _repr_svg_(self):  # notebooks show the graph when Graphviz is installed
        exe = shutil.which("dot")
        if exe is None:
            return None
        return subprocess.run([exe, "-Tsvg"], input=self.source.encode(), capture_output=True,
                              timeout=60).stdout.decode()

    def save(self, filename: str) -> str:
        with open(filename, "w") as f:
            f.write(self.source)
        return filename

    def render(self, filename: str = "graph", format: str = "pdf") -> str:
        exe = shutil.which("dot")
        if exe is None:
            raise RuntimeError("render: the Graphviz 'dot' program is not installed (apt install graphviz); "
                               "save() writes the dot text without it")
        src = self.save(filename + ".gv")
        out = f"{filename}.{format}"
        subprocess.run([exe, f"-T{format}", src, "-o", out], check=True, timeout=120)
        return out


def _q(s: str) -> str:
    r"""``s`` as a quoted dot string (line breaks become dot's ``\n`` escape)."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _shape(t) -> str:
    return "(" + ", ".join(str(d) for d in t.shape) + ")"


def make_dot(var, params: dict | None = None, show_attrs: bool = False, show_saved: bool = False,
             max_attr_chars: int = 50) -> Dot:
    """The backward graph reaching ``var`` (a tensor or a tuple of tensors) as Graphviz dot.

    Leaves (parameters) are light blue and named from ``params`` (e.g. ``dict(model.named_parameters())``);
    outputs are green; each backward node is a box named as in PyTorch (``AddmmBackward0``).

    Example:
        >>> dot = make_dot(model(x).sum(), params=dict(model.named_parameters()))
        >>> dot.save("graph.gv")  # doctest: +SKIP
    """
    names = {id(p): n for n, p in (params or {}).items()}
    lines = ["digraph {", '  graph [size="12,12"]', '  node [align=left fontname=monospace fontsize=10 '
             'height=0.2 ranksep=0.1 shape=box style=filled]']
    seen: set = set()
    outs = var if isinstance(var, (tuple, list)) else (var,)

    def node_id(obj) -> str:
        return str(id(obj))

    def attrs_of(fn) -> str:
        if not (show_attrs or show_saved):
            return ""
        rows = []
        for k, v in sorted(vars(fn).items()):
            if k.startswith("_") or k in ("next_functions", "variable"):
                continue
            s = repr(v)
            rows.append(f"{k}: {s[:max_attr_chars] + '...' if len(s) > max_attr_chars else s}")
        if show_saved:
            for i, sv in enumerate(getattr(fn, "_saved", ()) or ()):
                t = getattr(sv, "_t", None) or getattr(sv, "tensor", None)
                if t is not None and hasattr(t, "shape"):
                    rows.append(f"saved[{i}]: {_shape(t)}")
        return ("\n" + "\n".join(rows)) if rows else ""

    stack = []
    for o in outs:
        fn = getattr(o, "grad_fn", None)
        oid = "out" + node_id(o)
        lines.append(f"  {oid} [label={_q(_shape(o))} fillcolor=darkolivegreen1]")
        if fn is not None:
            lines.append(f"  {node_id(fn)} -> {oid}")
            stack.append(fn)
    while stack:
        fn = stack.pop()
        if id(fn) in seen:
            continue
        seen.add(id(fn))
        var_ = getattr(fn, "variable", None)
        if var_ is not None:  # AccumulateGrad: the leaf it feeds
            label = (names.get(id(var_), "") + "\n" if id(var_) in names else "") + _shape(var_)
            lines.append(f"  {node_id(fn)} [label={_q(label)} fillcolor=lightblue]")
        else:
            lines.append(f"  {node_id(fn)} [label={_q(type(fn).__name__ + attrs_of(fn))} fillcolor=lightgrey]")
        for nxt, _ in getattr(fn, "next_functions", ()) or ():
            if nxt is not None:
                lines.append(f"  {node_id(nxt)} -> {node_id(fn)}")
                stack.append(nxt)
    lines.append("}")
    return Dot("\n".join(lines) + "\n")
