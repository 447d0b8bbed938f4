"""The op list shared by the parity suites: tests/parity/test_torch_parity.py (against PyTorch itself, when it is
installed) and tests/gpu_standin/test_parity_sweep.py (the stand-in CUDA device against the CPU, in `make test`).

Each case is ``name -> (function of the library module and tensors, input arrays)``; the function uses only names
that PyTorch and disttorch share, so the same case runs on either library and on either device. LAYER_CASES and
LOSS_CASES follow the same shape (``L.nn``/``L.nn.functional``); OPTIMIZERS lists optimizer factories.
"""
import numpy as np

RNG = np.random.default_rng(0)
A = RNG.standard_normal((3, 4))
B = RNG.standard_normal((3, 4))
POS = RNG.uniform(0.5, 2.0, (3, 4))
M = RNG.standard_normal((4, 5))
V = RNG.standard_normal(4)
IDX = np.array([[0, 2, 1, 3], [3, 3, 0, 1], [1, 0, 2, 2]])

# name -> (function of the library module and tensors, input arrays)
CASES = {
    "add_alpha": (lambda L, a, b: L.add(a, b, alpha=0.5), [A, B]),
    "sub_rsub": (lambda L, a, b: 2 - a - b * 3, [A, B]),
    "div": (lambda L, a, b: a / (b.abs() + 1), [A, B]),
    "pow": (lambda L, a, b: a.abs() ** 1.5 + 2 ** b, [A, B]),
    "floor_div_rem": (lambda L, a, b: (a.detach() * 5) // 2 + (a * 5) % 3 + b, [A, B]),
    "exp_log": (lambda L, a: a.exp() + a.abs().log1p() + a.abs().sqrt(), [A]),
    "trig": (lambda L, a: a.sin() * a.cos() + a.tanh() + a.sigmoid() + a.atan(), [A]),
    "erf_family": (lambda L, a: L.erf(a) + L.erfc(a) + L.erfinv(a.tanh() * 0.9), [A]),
    "clamp_where": (lambda L, a, b: a.clamp(-0.5, 0.7) + L.where(a > b, a, b), [A, B]),
    "max_min_pair": (lambda L, a, b: L.maximum(a, b) - L.minimum(a, b), [A, B]),
    "lerp_addcmul": (lambda L, a, b: L.lerp(a, b, 0.3) + L.addcmul(a, a, b, value=0.5), [A, B]),
    "sum_mean": (lambda L, a: a.sum(0) * 2 + a.mean(1).sum() + a.sum((0, 1), keepdim=True), [A]),
    "var_std": (lambda L, a: a.var(1) + a.std(0).sum() + a.var(correction=0), [A]),
    "prod_norm": (lambda L, a: a.prod(1) + a.norm() + a.norm(p=1, dim=0).sum(), [A]),
    "amax_logsumexp": (lambda L, a: a.amax(1) + a.logsumexp(1), [A]),
    "max_dim": (lambda L, a: a.max(1).values + a.min(0).values.sum(), [A]),
    "softmax": (lambda L, a: a.softmax(1) + a.log_softmax(0), [A]),
    "cumsum_cumprod": (lambda L, a: a.cumsum(1) + a.cumprod(0), [A]),
    "sort_topk": (lambda L, a: a.sort(1).values + a.topk(2, dim=1).values.sum(), [A]),
    "matmul_family": (lambda L, a, m, v: (a @ m).sum(1) + a @ v, [A, M, V]),
    "einsum": (lambda L, a, m: L.einsum("ij,jk->ik", a, m), [A, M]),
    "addmm_bmm": (lambda L, a, m: L.addmm(a @ m, a, m, beta=0.5, alpha=2)
                  + L.bmm(a.unsqueeze(0), m.unsqueeze(0))[0], [A, M]),
    "shape_ops": (lambda L, a: a.t().reshape(2, 6).flip(0).roll(1, 1).repeat(2, 1).tril(), [A]),
    "cat_stack_split": (lambda L, a, b: L.cat([a, b], 1).split(4, 1)[1] + L.stack([a, b]).sum(0), [A, B]),
    "chunk_unbind": (lambda L, a: a.chunk(2, 1)[0].sum() + sum(r.sum() for r in a.unbind(0)), [A]),
    "expand_permute": (lambda L, a: a.unsqueeze(2).expand(3, 4, 2).permute(2, 0, 1) * 2, [A]),
    "getitem": (lambda L, a: a[1:, ::2] * 2 + a[[0, 2, 2]][:, 1:3].sum() + a[a > 0].sum(), [A]),
    "gather_scatter": (lambda L, a, i: a.gather(1, i) + a.scatter_add(1, i, a * 2), [A, IDX]),
    "index_select_masked": (lambda L, a: a.index_select(1, L.tensor([3, 0, 0])).sum()
                            + a.masked_fill(a < 0, 0.5), [A]),
    "diagonal_diag": (lambda L, m: m.diagonal().sum() + L.diag(m[:, 0]).sum(), [M]),
}

_X4 = RNG.standard_normal((2, 3, 6, 6))
_W4 = RNG.standard_normal((4, 3, 3, 3)) * 0.3
_SEQ = RNG.standard_normal((2, 5, 4))
_CLS = np.array([0, 2, 1])
_P = RNG.uniform(0.05, 0.95, (3, 4))

LAYER_CASES = {
    "conv2d_pool": (lambda L, x, w: L.nn.functional.max_pool2d(L.nn.functional.conv2d(x, w, padding=1), 2)
                    + L.nn.functional.avg_pool2d(L.nn.functional.conv2d(x, w, padding=1), 2), [_X4, _W4]),
    "conv_stride_adaptive": (lambda L, x, w: L.nn.functional.adaptive_avg_pool2d(
        L.nn.functional.conv2d(x, w, stride=2), 1).flatten(1), [_X4, _W4]),
    "batch_norm_train": (lambda L, x: L.nn.functional.batch_norm(x, None, None, training=True), [_X4]),
    "group_layer_norm": (lambda L, x: L.nn.functional.group_norm(x, 3) + L.nn.functional.layer_norm(x, (6, 6)),
                         [_X4]),
    "linear_gelu_silu": (lambda L, a, m: L.nn.functional.gelu(L.nn.functional.linear(a, m.t()))
                         + L.nn.functional.silu(a @ m), [A, M]),
    "activations": (lambda L, a: L.nn.functional.elu(a) + L.nn.functional.leaky_relu(a, 0.1)
                    + L.nn.functional.softplus(a) + L.nn.functional.hardtanh(a) + L.nn.functional.mish(a), [A]),
    "pad_interpolate": (lambda L, x: L.nn.functional.interpolate(L.nn.functional.pad(x, (1, 1, 2, 0),
                                                                                  mode="reflect"),
                                                                 scale_factor=2, mode="bilinear"), [_X4]),
    "scaled_dot_product": (lambda L, q: L.nn.functional.scaled_dot_product_attention(q, q * 0.5, q, is_causal=True),
                           [_SEQ]),
    "embedding_onehot": (lambda L, w, i: L.nn.functional.embedding(i, w).sum(0)
                         + L.nn.functional.one_hot(i[0], 4).to(w.dtype) @ w, [M, IDX]),
}

LOSS_CASES = {
    "cross_entropy": (lambda L, a, t: L.nn.functional.cross_entropy(a, t, label_smoothing=0.1), [A, _CLS]),
    "nll_weighted": (lambda L, a, t, w: L.nn.functional.nll_loss(a.log_softmax(1), t, weight=w.abs(),
                                                                 ignore_index=1), [A, _CLS, V]),
    "mse_l1_huber": (lambda L, a, b: L.nn.functional.mse_loss(a, b) + L.nn.functional.l1_loss(a, b)
                     + L.nn.functional.huber_loss(a, b, delta=0.5), [A, B]),
    "bce_family": (lambda L, p, a: L.nn.functional.binary_cross_entropy(p, p.detach().flip(0))
                   + L.nn.functional.binary_cross_entropy_with_logits(a, p.detach()), [_P, A]),
    "kl_div": (lambda L, a, b: L.nn.functional.kl_div(a.log_softmax(1), b.softmax(1), reduction="batchmean"), [A, B]),
}

# name -> (factory of the library's optimizer over params, learning rate)
OPTIMIZERS = {
    "SGD_momentum": lambda L, ps: L.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
    "Adam": lambda L, ps: L.optim.Adam(ps, lr=0.05),
    "AdamW_amsgrad": lambda L, ps: L.optim.AdamW(ps, lr=0.05, amsgrad=True),
    "RMSprop": lambda L, ps: L.optim.RMSprop(ps, lr=0.01, momentum=0.5),
    "Adagrad": lambda L, ps: L.optim.Adagrad(ps, lr=0.1),
}
