"""The table from a traced op's name to the function that writes its ONNX nodes (one per op family file)."""
from __future__ import annotations

SYMBOLICS: dict = {}


def register(*names):
    """Decorator: ``fn(e)`` writes the ONNX nodes of the ops named ``names`` (``e`` is an ``_graph.Emit``)."""
    def deco(fn):
        for n in names:
            SYMBOLICS[n] = fn
        return fn
    return deco

EXPORTING = [False]  # True while export() runs the model (is_in_onnx_export)
