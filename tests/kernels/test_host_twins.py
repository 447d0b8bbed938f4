"""The row and index code of cross_entropy.cu and im2col.cu, compiled for the CPU with nvcc and run there.

That code is ``__host__ __device__``; on the host a ``RowTeam`` is one thread whose reductions are the identity,
so the same source text computes whole rows sequentially. Its results are compared with the generic
array-module code (``F.cross_entropy`` and its autograd gradient, ``F.unfold``/``F.fold``) in float32. This
checks the formulas, the ignore/out-of-range handling and the im2col/col2im index arithmetic (stride, padding,
dilation, the gather formulation of col2im, int and long long indices); the block reductions, the launch and
float16/bfloat16 need a GPU (tests/gpu). One nvcc call per session; skipped, saying why, without nvcc or a host compiler.
"""
import pathlib
import shutil
import subprocess

import numpy as np
import pytest

import disttorch
import disttorch.nn.functional as F

KERNELS = pathlib.Path(__file__).resolve().parents[2] / "kernels"
NVCC = shutil.which("nvcc")

HOST_MAIN = r"""
#include <cstdio>
#include <cstring>
#include <vector>
static std::vector<float> read_f(long long n) { std::vector<float> v(n); for (auto& e : v) scanf("%f", &e); return v; }
static void print_f(const float* v, long long n) { for (long long i = 0; i < n; ++i) printf("%.9g\n", v[i]); }
int main() {
    char mode[16];
    while (scanf("%15s", mode) == 1) {
        if (!strcmp(mode, "ce")) {
            long long rows, cols, ignore; float eps; int has_w;
            scanf("%lld %lld %lld %f %d", &rows, &cols, &ignore, &eps, &has_w);
            std::vector<float> x = read_f(rows * cols), w = read_f(has_w ? cols : 0), g = read_f(rows);
            std::vector<long long> t(rows); for (auto& e : t) scanf("%lld", &e);
            std::vector<float> loss(rows), lse(rows), gx(rows * cols);
            int bad = 0;
            RowTeam team{nullptr};
            for (long long r = 0; r < rows; ++r) {
                ce_fwd_row<float>(team, &x[r * cols], cols, t[r], has_w ? w.data() : nullptr, ignore, eps, &loss[r],
                                  &lse[r], &bad);
                ce_bwd_row<float>(team, &x[r * cols], &gx[r * cols], cols, t[r], has_w ? w.data() : nullptr, ignore,
                                  eps, lse[r], g[r]);
            }
            printf("%d\n", bad);
            print_f(loss.data(), rows); print_f(lse.data(), rows); print_f(gx.data(), rows * cols);
        } else {
            Conv2dGeom<long long> g;
            scanf("%lld %lld %lld %lld %lld %lld %lld %lld %lld %lld %lld %lld", &g.n, &g.c, &g.h, &g.w, &g.kh, &g.kw,
                  &g.sh, &g.sw, &g.ph, &g.pw, &g.dh, &g.dw);
            g.oh = (g.h + 2 * g.ph - g.dh * (g.kh - 1) - 1) / g.sh + 1;
            g.ow = (g.w + 2 * g.pw - g.dw * (g.kw - 1) - 1) / g.sw + 1;
            const Conv2dGeom<int> gi = {(int)g.n, (int)g.c, (int)g.h, (int)g.w, (int)g.kh, (int)g.kw, (int)g.sh,
                                        (int)g.sw, (int)g.ph, (int)g.pw, (int)g.dh, (int)g.dw, (int)g.oh, (int)g.ow};
            const long long img = g.n * g.c * g.h * g.w, ncol = g.n * g.c * g.kh * g.kw * g.oh * g.ow;
            if (!strcmp(mode, "im2col")) {
                std::vector<float> x = read_f(img), cols(ncol);
                for (long long i = 0; i < ncol; ++i) {
                    const long long s = im2col_source<long long>(i, g);
                    if (s != im2col_source<int>((int)i, gi)) return printf("int/long long differ at %lld\n", i), 3;
                    cols[i] = s < 0 ? 0.0f : x[s];
                }
                print_f(cols.data(), ncol);
            } else {
                std::vector<float> cols = read_f(ncol), x(img);
                for (long long i = 0; i < img; ++i) {
                    x[i] = col2im_gather<float, long long>(cols.data(), i, g);
                    if (x[i] != col2im_gather<float, int>(cols.data(), (int)i, gi))
                        return printf("int/long long sums differ at %lld\n", i), 3;
                }
                print_f(x.data(), img);
            }
        }
        fflush(stdout);
    }
}
"""


@pytest.fixture(scope="session")
def twin(tmp_path_factory):
    if NVCC is None:
        pytest.skip("nvcc is not on PATH: the kernel sources cannot be compiled for the host here")
    d = tmp_path_factory.mktemp("host_twin")
    src = d / "twin.cu"
    src.write_text(f'#include "{KERNELS / "cross_entropy.cu"}"\n#include "{KERNELS / "im2col.cu"}"\n{HOST_MAIN}')
    exe = d / "twin"
    proc = subprocess.run([NVCC, "-std=c++17", "-arch=sm_80", "-o", str(exe), str(src)], capture_output=True,
                          text=True, timeout=180)
    if proc.returncode != 0 and "host compiler" in proc.stderr.lower():
        pytest.skip(f"nvcc has no usable host compiler here: {proc.stderr[-300:]}")
    assert proc.returncode == 0, proc.stderr

    def run(text: str) -> np.ndarray:
        proc = subprocess.run([str(exe)], input=text, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stdout[-300:] + proc.stderr[-300:]
        return np.array([float(v) for v in proc.stdout.split()], dtype=np.float64)

    return run


def _fmt(*arrays) -> str:
    return "\n".join(" ".join(repr(float(v)) if np.asarray(a).dtype.kind == "f" else str(int(v))
                              for v in np.asarray(a).ravel()) for a in arrays)


@pytest.mark.parametrize("weighted, eps, ignore_index", [(False, 0.0, -100), (True, 0.0, 2), (False, 0.2, 1),
                                                         (True, 0.1, -100)])
def test_cross_entropy_rows_match_the_generic_loss_and_gradient(twin, weighted, eps, ignore_index):
    rng = np.random.default_rng(3)
    rows, cols = 7, 5
    x = (rng.standard_normal((rows, cols)) * 3).astype(np.float32)
    t = rng.integers(0, cols, rows)
    t[1] = 2  # the ignored class appears at least once where ignore_index is 2
    w = rng.uniform(0.2, 2.0, cols).astype(np.float32)
    g = rng.standard_normal(rows).astype(np.float32)
    head = f"ce {rows} {cols} {ignore_index} {eps!r} {int(weighted)}\n"
    out = twin(head + _fmt(x, w if weighted else np.zeros(0, np.float32), g, t) + "\n")
    bad, loss, lse, gx = out[0], out[1:1 + rows], out[1 + rows:1 + 2 * rows], out[1 + 2 * rows:].reshape(rows, cols)

    xt = disttorch.tensor(x, requires_grad=True)
    ref = F.cross_entropy(xt, disttorch.tensor(t), weight=disttorch.tensor(w) if weighted else None,
                          ignore_index=ignore_index, reduction="none", label_smoothing=eps)
    (ref * disttorch.tensor(g)).sum().backward()
    assert bad == 0
    np.testing.assert_allclose(loss, ref.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(lse, np.log(np.exp(x.astype(np.float64)).sum(1)), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-5, atol=1e-6)
    if ignore_index == 2:
        assert (loss[t == 2] == 0).all() and (gx[t == 2] == 0).all()


def test_cross_entropy_out_of_range_target_sets_the_flag_and_a_nan_loss(twin):
    x = np.zeros((2, 3), np.float32)
    out = twin("ce 2 3 -100 0.0 0\n" + _fmt(x, np.ones(2, np.float32), np.array([1, 3])) + "\n")
    assert out[0] == 1 and out[1] == pytest.approx(np.log(3)) and np.isnan(out[2])
    assert (out[5:5 + 3] != 0).any() and (out[5 + 3:] == 0).all()  # row 1 (bad target): zero gradient


# (N, C, H, W, kernel, stride, padding, dilation): unit and non-unit stride, padding, dilation, non-square.
GEOMS = [(2, 3, 5, 6, (3, 3), (1, 1), (1, 1), (1, 1)), (1, 2, 7, 6, (3, 2), (2, 3), (1, 0), (1, 1)),
         (2, 1, 9, 8, (2, 3), (2, 1), (2, 1), (2, 3)), (1, 2, 4, 4, (4, 4), (3, 3), (0, 0), (1, 1))]


@pytest.mark.parametrize("n, c, h, w, k, s, p, d", GEOMS)
def test_im2col_and_col2im_match_unfold_and_fold(twin, n, c, h, w, k, s, p, d):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    geom = f"{n} {c} {h} {w} {k[0]} {k[1]} {s[0]} {s[1]} {p[0]} {p[1]} {d[0]} {d[1]}\n"
    want = F.unfold(disttorch.tensor(x), k, dilation=d, padding=p, stride=s).numpy()
    cols = twin("im2col " + geom + _fmt(x) + "\n")
    np.testing.assert_array_equal(cols.astype(np.float32).reshape(want.shape), want)  # copies: exact
    y = rng.standard_normal(want.shape).astype(np.float32)
    back = twin("col2im " + geom + _fmt(y) + "\n").reshape(x.shape)
    ref = F.fold(disttorch.tensor(y), (h, w), k, dilation=d, padding=p, stride=s).numpy()
    np.testing.assert_allclose(back, ref, rtol=1e-5, atol=1e-5)
