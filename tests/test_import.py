"""`import disttorch` stays cheap: no cupy/mpi4py/zmq/ray, submodules reachable lazily."""
import json
import subprocess
import sys
import warnings

import pytest

import disttorch as torch

HEAVY = ["cupy", "mpi4py", "mpi4py.MPI", "zmq", "ray", "torch"]


def test_import_does_not_load_heavy_modules():
    code = ("import sys, json; import disttorch; "
            f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


@pytest.mark.parametrize("name", ["autograd", "cuda", "backends", "nn", "optim", "utils", "distributed"])
def test_submodules_are_attributes(name):
    assert getattr(torch, name) is not None


def test_top_level_basics():
    assert isinstance(torch.__version__, str)
    assert torch.is_tensor(torch.zeros(1)) and not torch.is_tensor([1])
    assert torch.cuda.is_available() in (True, False)
    assert torch.backends.cudnn.benchmark is False
    model = object()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "no graph compiler", once per process (tested elsewhere)
        assert torch.compile(model) is model
        assert torch.compile()(model) is model
    n = torch.get_num_threads()
    assert n >= 1
    torch.set_num_threads(1)
    assert torch.get_num_threads() == 1
    torch.set_num_threads(n)


def test_unknown_attribute_says_not_implemented():
    with pytest.raises(AttributeError, match="not implemented yet"):
        torch.some_function_that_does_not_exist


def test_submodule_gap_names_module_and_attribute():
    import disttorch.nn as nn

    with pytest.raises(AttributeError, match=r"disttorch\.nn\.NoSuchLayer is not implemented yet"):
        nn.NoSuchLayer
