"""Recurrent layers (RNN, LSTM, GRU) and their single-step cells, as ``torch.nn.modules.rnn``.

Every layer/direction works on the packed layout (rows of step ``t`` are the ``batch_sizes[t]`` running
sequences; a padded input is the special case of a constant batch size). The input projection
``x @ W_ih^T + b_ih`` for all steps is one ``linear`` call; the recurrence is one fused graph node per
layer and direction (``disttorch/ops/_rnn.py``). A cell is the same node over one step.
"""
from __future__ import annotations

import math
import numbers
import warnings


from ... import _internals as E
from ... import _tensor as T
from ...amp import _state as _amp
from ...ops._rnn import rnn_layer
from ...ops.creation import empty, zeros
from ...ops.dropout import dropout as _dropout
from ...ops.join import cat, stack
from ...ops.linear import linear
from .. import init
from ..parameter import Parameter
from ..utils.rnn import PackedSequence
from .module import Module

__all__ = ["RNNBase", "RNN", "LSTM", "GRU", "RNNCellBase", "RNNCell", "LSTMCell", "GRUCell"]

_GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}


def _regular(steps: int, batch: int):
    return (batch,) * steps, tuple(t * batch for t in range(steps))


def _packed_offsets(batch_sizes):
    bsz = tuple(int(b) for b in E.to_host(E.array(batch_sizes)))
    offs, o = [], 0
    for b in bsz:
        offs.append(o)
        o += b
    return bsz, tuple(offs)


def _apply_permutation(tensor, permutation, dim: int = 1):
    return tensor.index_select(dim, permutation)


# ---------------------------------------------------------------------------------------------------------
# Modules
# ---------------------------------------------------------------------------------------------------------
class RNNBase(Module):
    """Base class of RNN, LSTM and GRU: parameters named as PyTorch's (``weight_ih_l0``, ``bias_hh_l1_reverse``...)."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 device=None, dtype=None) -> None:
        super().__init__()
        self.mode = mode
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.proj_size = proj_size
        num_directions = 2 if bidirectional else 1
        if not isinstance(dropout, numbers.Number) or isinstance(dropout, bool) or not 0 <= dropout <= 1:
            raise ValueError("dropout should be a number in range [0, 1] representing the probability of an "
                             "element being zeroed")
        if dropout > 0 and num_layers == 1:
            warnings.warn("dropout option adds dropout after all but last recurrent layer, so non-zero dropout "
                          f"expects num_layers greater than 1, but got dropout={dropout} and "
                          f"num_layers={num_layers}")
        if not isinstance(hidden_size, int) or isinstance(hidden_size, bool):
            raise TypeError(f"hidden_size should be of type int, got: {type(hidden_size).__name__}")
        if hidden_size <= 0:
            raise ValueError("hidden_size must be greater than zero")
        if num_layers <= 0:
            raise ValueError("num_layers must be greater than zero")
        if proj_size < 0:
            raise ValueError("proj_size should be a positive integer or zero to disable projections")
        if proj_size >= hidden_size:
            raise ValueError("proj_size has to be smaller than hidden_size")
        if mode not in _GATES:
            raise ValueError("Unrecognized RNN mode: " + mode)
        gate_size = _GATES[mode] * hidden_size
        real_hidden = proj_size if proj_size > 0 else hidden_size
        kw = {"device": device, "dtype": dtype}
        self._flat_weights_names = []
        self._all_weights = []
        for layer in range(num_layers):
            for direction in range(num_directions):
                layer_input = input_size if layer == 0 else real_hidden * num_directions
                suffix = "_reverse" if direction == 1 else ""
                shapes = [("weight_ih_l{}{}", (gate_size, layer_input)), ("weight_hh_l{}{}", (gate_size, real_hidden))]
                if bias:
                    shapes += [("bias_ih_l{}{}", (gate_size,)), ("bias_hh_l{}{}", (gate_size,))]
                if proj_size > 0:
                    shapes.append(("weight_hr_l{}{}", (proj_size, hidden_size)))
                names = []
                for fmt, shape in shapes:
                    name = fmt.format(layer, suffix)
                    setattr(self, name, Parameter(_empty(shape, kw)))
                    names.append(name)
                self._flat_weights_names.extend(names)
                self._all_weights.append(names)
        self.reset_parameters()

    @property
    def _flat_weights(self) -> list:
        return [self._weight(n) for n in self._flat_weights_names]

    def _weight(self, name: str):
        # A parametrization (weight_norm...) may replace a Parameter by a computed attribute.
        p = self._parameters
        return p[name] if name in p else getattr(self, name, None)

    @property
    def all_weights(self) -> list:
        return [[getattr(self, w) for w in ws] for ws in self._all_weights]

    def flatten_parameters(self) -> None:
        """A no-op: weights are never packed into one buffer here (kept for PyTorch scripts that call it)."""

    def _update_flat_weights(self) -> None:
        pass

    def _init_flat_weights(self) -> None:
        pass

    def reset_parameters(self) -> None:
        """Every weight and bias ~ U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)), as PyTorch."""
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for weight in self.parameters():
            init.uniform_(weight, -stdv, stdv)

    # ---- argument checks (PyTorch's names and messages) ---------------------------------------------
    def check_input(self, input: T.Tensor, batch_sizes) -> None:
        w = self._weight(self._flat_weights_names[0])
        if input.dtype != w.dtype:
            raise ValueError(f"input must have the type {w.dtype}, got type {input.dtype}")
        expected = 2 if batch_sizes is not None else 3
        if input.dim() != expected:
            raise RuntimeError(f"input must have {expected} dimensions, got {input.dim()}")
        if self.input_size != input.size(-1):
            raise RuntimeError(f"input.size(-1) must be equal to input_size. Expected {self.input_size}, "
                               f"got {input.size(-1)}")

    def get_expected_hidden_size(self, input: T.Tensor, batch_sizes) -> tuple:
        if batch_sizes is not None:
            mini_batch = int(batch_sizes[0])
        else:
            mini_batch = input.size(0) if self.batch_first else input.size(1)
        num_directions = 2 if self.bidirectional else 1
        size = self.proj_size if self.proj_size > 0 else self.hidden_size
        return (self.num_layers * num_directions, mini_batch, size)

    def check_hidden_size(self, hx: T.Tensor, expected_hidden_size: tuple,
                          msg: str = "Expected hidden size {}, got {}") -> None:
        if tuple(hx.size()) != tuple(expected_hidden_size):
            raise RuntimeError(msg.format(expected_hidden_size, list(hx.size())))

    def check_forward_args(self, input: T.Tensor, hidden: T.Tensor, batch_sizes) -> None:
        self.check_input(input, batch_sizes)
        self.check_hidden_size(hidden, self.get_expected_hidden_size(input, batch_sizes))

    def permute_hidden(self, hx, permutation):
        if permutation is None:
            return hx
        return _apply_permutation(hx, permutation)

    def extra_repr(self) -> str:
        s = "{input_size}, {hidden_size}"
        if self.proj_size != 0:
            s += ", proj_size={proj_size}"
        if self.num_layers != 1:
            s += ", num_layers={num_layers}"
        if self.bias is not True:
            s += ", bias={bias}"
        if self.batch_first is not False:
            s += ", batch_first={batch_first}"
        if self.dropout != 0:
            s += ", dropout={dropout}"
        if self.bidirectional is not False:
            s += ", bidirectional={bidirectional}"
        return s.format(**self.__dict__)

    # ---- the computation ----------------------------------------------------------------------------
    def _prepare(self, input):
        """Common front half of forward: unpack/unbatch the input; returns the pieces ``_run`` needs."""
        name = {"LSTM": "LSTM", "GRU": "GRU"}.get(self.mode, "RNN")
        if isinstance(input, PackedSequence):
            data, batch_sizes, sorted_indices, unsorted_indices = input
            return data, batch_sizes, sorted_indices, unsorted_indices, True, True
        if not isinstance(input, T.Tensor):
            raise TypeError(f"{name}.forward(): argument 'input' must be Tensor or PackedSequence, not "
                            f"{type(input).__name__}")
        if input.dim() not in (2, 3):
            what = "D tensor" if name == "RNN" else "D"  # PyTorch's wording differs between the classes
            raise ValueError(f"{name}: Expected input to be 2D or 3D, got {input.dim()}{what} instead")
        is_batched = input.dim() == 3
        if not is_batched:
            input = input.unsqueeze(0 if self.batch_first else 1)
        return input, None, None, None, is_batched, False

    def _run(self, input, batch_sizes, hx, cx):
        """Run all layers; ``input`` is (T, B, H_in) (batch-first already undone) or packed data (N, H_in)."""
        if batch_sizes is not None:
            bsz, offs = _packed_offsets(batch_sizes)
            x = input
        else:
            steps, batch = input.shape[0], input.shape[1]
            if steps == 0:
                raise RuntimeError("Expected sequence length to be larger than 0 in RNN")
            bsz, offs = _regular(steps, batch)
            x = input.reshape(steps * batch, input.shape[2])
        num_directions = 2 if self.bidirectional else 1
        w = self._weight
        hxs = hx.unbind(0)
        cxs = cx.unbind(0) if cx is not None else None
        hns, cns = [], []
        for layer in range(self.num_layers):
            outs = []
            for d in range(num_directions):
                k = layer * num_directions + d
                names = self._all_weights[k]
                w_ih, w_hh = w(names[0]), w(names[1])
                b_ih, b_hh = (w(names[2]), w(names[3])) if self.bias else (None, None)
                w_hr = w(names[-1]) if self.proj_size > 0 else None
                gi = linear(x, w_ih, b_ih)
                c0 = None if cxs is None else cxs[k]
                out, hn, cn = rnn_layer(self.mode, gi, hxs[k], c0, w_hh, b_hh, w_hr, bsz, offs, d == 1)
                outs.append(out)
                hns.append(hn)
                cns.append(cn)
            x = outs[0] if num_directions == 1 else cat(outs, 1)
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = _dropout(x, self.dropout, True)
        if batch_sizes is None:
            x = x.reshape(input.shape[0], input.shape[1], x.shape[1])
        return x, stack(hns, 0), (stack(cns, 0) if cx is not None else None)

    def _finish(self, output, batch_sizes, sorted_indices, unsorted_indices, is_batched, packed):
        if packed:
            return PackedSequence(output, batch_sizes, sorted_indices, unsorted_indices)
        if self.batch_first:
            output = output.transpose(0, 1)
        if not is_batched:
            output = output.squeeze(0 if self.batch_first else 1)
        return output

    def _zeros(self, data, batch: int, size: int):
        num_directions = 2 if self.bidirectional else 1
        return zeros(self.num_layers * num_directions, batch, size, dtype=data.dtype, device=data.device)

    def _time_major(self, data, packed):
        return data.transpose(0, 1) if (self.batch_first and not packed) else data

    def forward(self, input, hx=None):
        """``(output, h_n)``; output is a PackedSequence when the input is one."""
        if self.mode == "GRU" and _amp.STATE.active:
            with _amp.suspended():  # PyTorch's CPU autocast does not reach GRU: it runs in its inputs' dtype
                return self.forward(input, hx)
        data, batch_sizes, sidx, uidx, is_batched, packed = self._prepare(input)
        if not packed and hx is not None:
            if not is_batched and hx.dim() != 2:
                raise RuntimeError(f"For unbatched 2-D input, hx should also be 2-D but got {hx.dim()}-D tensor")
            if is_batched and hx.dim() != 3:
                raise RuntimeError(f"For batched 3-D input, hx should also be 3-D but got {hx.dim()}-D tensor")
            if not is_batched:
                hx = hx.unsqueeze(1)
        batch = int(batch_sizes[0]) if packed else data.size(0 if self.batch_first else 1)
        if hx is None:
            hx = self._zeros(data, batch, self.proj_size if self.proj_size > 0 else self.hidden_size)
        else:
            hx = self.permute_hidden(hx, sidx)
        self.check_forward_args(data, hx, batch_sizes)
        output, hidden, _ = self._run(self._time_major(data, packed), batch_sizes, hx, None)
        output = self._finish(output, batch_sizes, sidx, uidx, is_batched, packed)
        if not packed and not is_batched:
            hidden = hidden.squeeze(1)
        return output, self.permute_hidden(hidden, uidx)


def _empty(shape, kw):
    return empty(*shape, **kw)


class RNN(RNNBase):
    """Elman RNN: ``h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)`` (or ReLU), as ``torch.nn.RNN``.

    Args: input_size, hidden_size, num_layers=1, nonlinearity='tanh', bias=True, batch_first=False,
    dropout=0.0, bidirectional=False, device=None, dtype=None.

    Example:
        >>> rnn = nn.RNN(10, 20, 2)
        >>> output, hn = rnn(disttorch.randn(5, 3, 10), disttorch.randn(2, 3, 20))
    """

    def __init__(self, *args, **kwargs) -> None:
        if "proj_size" in kwargs:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        if len(args) > 3:
            self.nonlinearity = args[3]
            args = args[:3] + args[4:]
        else:
            self.nonlinearity = kwargs.pop("nonlinearity", "tanh")
        if self.nonlinearity == "tanh":
            mode = "RNN_TANH"
        elif self.nonlinearity == "relu":
            mode = "RNN_RELU"
        else:
            raise ValueError(f"Unknown nonlinearity '{self.nonlinearity}'. Select from 'tanh' or 'relu'.")
        super().__init__(mode, *args, **kwargs)


class LSTM(RNNBase):
    """Long short-term memory, as ``torch.nn.LSTM`` (gates i, f, g, o; optional projection ``proj_size``).

    Returns ``(output, (h_n, c_n))``.

    Example:
        >>> lstm = nn.LSTM(10, 20, 2)
        >>> output, (hn, cn) = lstm(disttorch.randn(5, 3, 10))
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__("LSTM", *args, **kwargs)

    def get_expected_cell_size(self, input: T.Tensor, batch_sizes) -> tuple:
        if batch_sizes is not None:
            mini_batch = int(batch_sizes[0])
        else:
            mini_batch = input.size(0) if self.batch_first else input.size(1)
        num_directions = 2 if self.bidirectional else 1
        return (self.num_layers * num_directions, mini_batch, self.hidden_size)

    def check_forward_args(self, input: T.Tensor, hidden: tuple, batch_sizes) -> None:
        self.check_input(input, batch_sizes)
        self.check_hidden_size(hidden[0], self.get_expected_hidden_size(input, batch_sizes),
                               "Expected hidden[0] size {}, got {}")
        self.check_hidden_size(hidden[1], self.get_expected_cell_size(input, batch_sizes),
                               "Expected hidden[1] size {}, got {}")

    def permute_hidden(self, hx, permutation):
        if permutation is None:
            return hx
        return _apply_permutation(hx[0], permutation), _apply_permutation(hx[1], permutation)

    def forward(self, input, hx=None):
        """``(output, (h_n, c_n))``; output is a PackedSequence when the input is one."""
        data, batch_sizes, sidx, uidx, is_batched, packed = self._prepare(input)
        real_hidden = self.proj_size if self.proj_size > 0 else self.hidden_size
        if hx is None:
            batch = int(batch_sizes[0]) if packed else data.size(0 if self.batch_first else 1)
            hx = (self._zeros(data, batch, real_hidden), self._zeros(data, batch, self.hidden_size))
        else:
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise RuntimeError("LSTM: expected hx to be a tuple (h_0, c_0) of two tensors")
            if not packed:
                if is_batched and (hx[0].dim() != 3 or hx[1].dim() != 3):
                    raise RuntimeError(f"For batched 3-D input, hx and cx should also be 3-D but got "
                                       f"({hx[0].dim()}-D, {hx[1].dim()}-D) tensors")
                if not is_batched:
                    if hx[0].dim() != 2 or hx[1].dim() != 2:
                        raise RuntimeError(f"For unbatched 2-D input, hx and cx should also be 2-D but got "
                                           f"({hx[0].dim()}-D, {hx[1].dim()}-D) tensors")
                    hx = (hx[0].unsqueeze(1), hx[1].unsqueeze(1))
            hx = self.permute_hidden(hx, sidx)
        self.check_forward_args(data, hx, batch_sizes)
        output, hn, cn = self._run(self._time_major(data, packed), batch_sizes, hx[0], hx[1])
        output = self._finish(output, batch_sizes, sidx, uidx, is_batched, packed)
        if not packed and not is_batched:
            hn, cn = hn.squeeze(1), cn.squeeze(1)
        return output, self.permute_hidden((hn, cn), uidx)


class GRU(RNNBase):
    """Gated recurrent unit, as ``torch.nn.GRU`` (gates r, z, n; ``n = tanh(W_in x + b_in + r*(W_hn h + b_hn))``).

    Example:
        >>> gru = nn.GRU(10, 20, 2)
        >>> output, hn = gru(disttorch.randn(5, 3, 10))
    """

    def __init__(self, *args, **kwargs) -> None:
        if "proj_size" in kwargs:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        super().__init__("GRU", *args, **kwargs)


# ---------------------------------------------------------------------------------------------------------
# Cells
# ---------------------------------------------------------------------------------------------------------
class RNNCellBase(Module):
    """Base class of the single-step cells: ``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh``."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool, num_chunks: int, device=None,
                 dtype=None) -> None:
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        self.weight_ih = Parameter(_empty((num_chunks * hidden_size, input_size), kw))
        self.weight_hh = Parameter(_empty((num_chunks * hidden_size, hidden_size), kw))
        if bias:
            self.bias_ih = Parameter(_empty((num_chunks * hidden_size,), kw))
            self.bias_hh = Parameter(_empty((num_chunks * hidden_size,), kw))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def extra_repr(self) -> str:
        s = "{input_size}, {hidden_size}"
        if "bias" in self.__dict__ and self.bias is not True:
            s += ", bias={bias}"
        if "nonlinearity" in self.__dict__ and self.nonlinearity != "tanh":
            s += ", nonlinearity={nonlinearity}"
        return s.format(**self.__dict__)

    def reset_parameters(self) -> None:
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for weight in self.parameters():
            init.uniform_(weight, -stdv, stdv)

    def _step(self, mode: str, name: str, input, hx, cx=None):
        """Shared body of the cells' forward: checks, unbatched handling and one fused step."""
        if name != "RNNCell" and _amp.STATE.active:
            with _amp.suspended():  # PyTorch's CPU autocast does not reach LSTMCell/GRUCell (RNNCell it does)
                return self._step(mode, name, input, hx, cx)
        if not isinstance(input, T.Tensor):
            raise TypeError(f"{name}.forward(): argument 'input' must be Tensor, not {type(input).__name__}")
        if input.dim() not in (1, 2):
            raise ValueError(f"{name}: Expected input to be 1D or 2D, got {input.dim()}D instead")
        for label, h in (("hx" if cx is None else "hx[0]", hx), ("hx[1]", cx)):
            if h is not None and h.dim() not in (1, 2):
                what = "hidden" if name != "LSTMCell" else label
                raise ValueError(f"{name}: Expected {what} to be 1D or 2D, got {h.dim()}D instead")
        is_batched = input.dim() == 2
        if not is_batched:
            input = input.unsqueeze(0)
        batch = input.shape[0]
        if hx is None:
            hx = zeros(batch, self.hidden_size, dtype=input.dtype, device=input.device)
            if mode == "LSTM":
                cx = hx
        elif not is_batched:
            hx = hx.unsqueeze(0)
            cx = cx.unsqueeze(0) if cx is not None else None
        if input.shape[1] != self.input_size:
            raise RuntimeError(f"input has inconsistent input_size: got {input.shape[1]} expected "
                               f"{self.input_size}")
        for label, h in (("0", hx), ("1", cx)):
            if h is None:
                continue
            if h.dim() != 2 or h.shape[0] != batch:
                raise RuntimeError(f"Input batch size {batch} doesn't match hidden{label} batch size "
                                   f"{h.shape[0] if h.dim() else 0}")
            if h.shape[1] != self.hidden_size:
                raise RuntimeError(f"hidden{label} has inconsistent hidden_size: got {h.shape[1]}, expected "
                                   f"{self.hidden_size}")
        bsz, offs = (batch,), (0,)
        gi = linear(input, self.weight_ih, self.bias_ih)
        _, hn, cn = rnn_layer(mode, gi, hx, cx, self.weight_hh, self.bias_hh, None, bsz, offs, False)
        if not is_batched:
            hn = hn.squeeze(0)
            cn = cn.squeeze(0) if cn is not None else None
        return hn if mode != "LSTM" else (hn, cn)


class RNNCell(RNNCellBase):
    """One Elman RNN step, as ``torch.nn.RNNCell``: ``h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh)``."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
                 device=None, dtype=None) -> None:
        super().__init__(input_size, hidden_size, bias, num_chunks=1, device=device, dtype=dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input: T.Tensor, hx: T.Tensor | None = None) -> T.Tensor:
        if self.nonlinearity == "tanh":
            mode = "RNN_TANH"
        elif self.nonlinearity == "relu":
            mode = "RNN_RELU"
        else:
            raise RuntimeError(f"Unknown nonlinearity: {self.nonlinearity}")
        return self._step(mode, "RNNCell", input, hx)


class LSTMCell(RNNCellBase):
    """One LSTM step, as ``torch.nn.LSTMCell``; returns ``(h', c')``."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None) -> None:
        super().__init__(input_size, hidden_size, bias, num_chunks=4, device=device, dtype=dtype)

    def forward(self, input: T.Tensor, hx: tuple | None = None) -> tuple:
        if hx is None:
            return self._step("LSTM", "LSTMCell", input, None, None)
        return self._step("LSTM", "LSTMCell", input, hx[0], hx[1])


class GRUCell(RNNCellBase):
    """One GRU step, as ``torch.nn.GRUCell``."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None) -> None:
        super().__init__(input_size, hidden_size, bias, num_chunks=3, device=device, dtype=dtype)

    def forward(self, input: T.Tensor, hx: T.Tensor | None = None) -> T.Tensor:
        return self._step("GRU", "GRUCell", input, hx)
