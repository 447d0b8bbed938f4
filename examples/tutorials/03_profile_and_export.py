"""Tutorial 3: profile a model, draw its autograd graph, export it to ONNX.

    python examples/tutorials/03_profile_and_export.py [--quick] [--out-dir DIR]

**Profiling.** ``disttorch.profiler.profile`` has PyTorch's API. Every op is observed at the one op entry point,
so the table counts and times each op; ``record_function("name")`` adds a range of your own, and backward
nodes show up as ``autograd::engine::evaluate_function: ...`` ranges::

    with profile(activities=[ProfilerActivity.CPU], record_shapes=True, profile_memory=True) as prof:
        with record_function("train_step"):
            loss = loss_fn(model(x), y)
            loss.backward()
    print(prof.key_averages().table(sort_by="cpu_time_total", row_limit=8))
    prof.export_chrome_trace("trace.json")

The trace opens in ui.perfetto.dev or chrome://tracing. Times are host times.

**The autograd graph.** ``disttorch.utils.viz.make_dot(loss, params=dict(model.named_parameters()))`` returns
the backward graph as Graphviz dot text (``.source``, ``.save(path)``; ``.render()`` needs Graphviz), as
torchviz does.

**ONNX export.** ``torch.onnx.export(model, (x,), path, input_names=..., output_names=..., dynamic_axes=...)``
traces one forward pass and writes an opset-17 ONNX model; with ``dynamic_axes`` the batch size is free.
onnxruntime then runs the file, here on a batch size the export never saw, and its output is compared with
the model's (``onnx`` and ``onnxruntime`` are optional extras).
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile

import numpy as np

import disttorch as torch
import disttorch.nn as nn
from disttorch.profiler import ProfilerActivity, profile, record_function
from disttorch.utils.viz import make_dot


class SmallCNN(nn.Module):
    """Conv -> BatchNorm -> ReLU -> MaxPool -> Linear on 1 x 8 x 8 images, 10 classes."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 8, kernel_size=3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(8 * 4 * 4, 10)

    def forward(self, x):
        x = self.pool(torch.relu(self.bn(self.conv(x))))
        return self.fc(torch.flatten(x, 1))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a shortened run (the test suite's)")
    p.add_argument("--out-dir", default=None, help="where trace.json, graph.dot and model.onnx go "
                                                   "(default: a temporary directory)")
    args = p.parse_args(argv)
    steps = 2 if args.quick else 10
    torch.manual_seed(0)
    model = SmallCNN()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss_fn = nn.CrossEntropyLoss()
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,))

    with tempfile.TemporaryDirectory() as tmp:
        out = args.out_dir or tmp
        os.makedirs(out, exist_ok=True)

        # 1. profile a few training steps
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True, profile_memory=True) as prof:
            for _ in range(steps):
                with record_function("train_step"):
                    optimizer.zero_grad()
                    loss = loss_fn(model(x), y)
                    loss.backward()
                    optimizer.step()
        print(prof.key_averages().table(sort_by="cpu_time_total", row_limit=8))
        trace = os.path.join(out, "trace.json")
        prof.export_chrome_trace(trace)
        with open(trace) as f:
            events = json.load(f)["traceEvents"]
        names = {e.get("name") for e in events}
        print(f"chrome trace: {trace} with {len(events)} events, "
              f"{sum(e.get('name') == 'train_step' for e in events)} train_step ranges")
        assert "train_step" in names

        # 2. the autograd graph of the loss
        dot = make_dot(loss, params=dict(model.named_parameters()))
        dot.save(os.path.join(out, "graph.dot"))
        print(f"autograd graph: {dot.source.count('->')} edges; parameters in it: "
              + ", ".join(n for n, _ in model.named_parameters() if n in dot.source))

        # 3. export to ONNX with a dynamic batch size, run it in onnxruntime, compare
        model.eval()
        path = os.path.join(out, "model.onnx")
        torch.onnx.export(model, (torch.randn(2, 1, 8, 8),), path, input_names=["image"],
                          output_names=["logits"], dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}})
        try:
            import onnxruntime as ort
        except ImportError:
            print("onnxruntime is not installed: the exported model was not run")
            return
        fresh = np.random.default_rng(1).standard_normal((5, 1, 8, 8)).astype(np.float32)
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        (ort_out,) = session.run(["logits"], {"image": fresh})
        with torch.no_grad():
            ref = model(torch.from_numpy(fresh)).numpy()
        err = float(np.abs(ort_out - ref).max() / np.abs(ref).max())
        print(f"onnx: {path}, output shape {list(ort_out.shape)}, max relative difference "
              f"onnxruntime vs disttorch {err:.2e}")


if __name__ == "__main__":
    main()
