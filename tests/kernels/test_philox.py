"""The dropout generator: the NumPy twin against Philox4x32-10's published known-answer vectors, and the
generator in dropout.cu (it is __host__ __device__) compiled for the host with nvcc and compared with the twin."""
import pathlib
import shutil
import subprocess

import numpy as np
import pytest

from disttorch.kernels import philox

KERNEL = pathlib.Path(__file__).resolve().parents[2] / "kernels" / "dropout.cu"

# Random123's kat_vectors for philox4x32_10: (counter, key, expected output).
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


@pytest.mark.parametrize("counter, key, expected", KAT)
def test_numpy_twin_matches_known_answers(counter, key, expected):
    assert tuple(int(w) for w in philox.philox4x32_10([counter], key)[0]) == expected


def test_keep_mask_is_deterministic_and_bernoulli():
    n, p = 200_000, 0.3
    a = philox.dropout_keep_mask(n, p, seed=2 ** 40 + 5, offset=3)
    assert np.array_equal(a, philox.dropout_keep_mask(n, p, seed=2 ** 40 + 5, offset=3))
    b = philox.dropout_keep_mask(n, p, seed=2 ** 40 + 5, offset=4)
    assert abs(np.mean(a != b) - 2 * p * (1 - p)) < 0.01  # another offset: an independent mask
    sigma = (p * (1 - p) / n) ** 0.5
    assert abs(a.mean() - (1 - p)) < 5 * sigma
    assert philox.dropout_keep_mask(n, 0.0, 1, 1).all()


HOST_MAIN = r"""
#include <cstdio>
int main() {
    unsigned int c[4], k[2];
    while (scanf("%x %x %x %x %x %x", &c[0], &c[1], &c[2], &c[3], &k[0], &k[1]) == 6) {
        Philox4 r = philox4x32_10(c[0], c[1], c[2], c[3], k[0], k[1]);
        printf("%08x %08x %08x %08x\n", r.v[0], r.v[1], r.v[2], r.v[3]);
    }
}
"""


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not on PATH: dropout.cu cannot be compiled here")
def test_kernel_generator_matches_the_twin(tmp_path):
    src = tmp_path / "philox_host.cu"
    src.write_text(f'#include "{KERNEL}"\n{HOST_MAIN}')
    exe = tmp_path / "philox_host"
    proc = subprocess.run(["nvcc", "-std=c++17", "-arch=sm_80", "-o", str(exe), str(src)], capture_output=True,
                          text=True, timeout=120)
    if proc.returncode != 0 and "host compiler" in proc.stderr.lower():
        pytest.skip(f"nvcc has no usable host compiler here: {proc.stderr[-300:]}")
    assert proc.returncode == 0, proc.stderr
    rng = np.random.default_rng(1)
    cases = [c + k for c, k, _ in KAT] + [tuple(int(v) for v in rng.integers(0, 2 ** 32, 6)) for _ in range(20)]
    run = subprocess.run([str(exe)], input="\n".join(" ".join(f"{v:x}" for v in c) for c in cases), capture_output=True,
                         text=True, timeout=30)
    got = [tuple(int(w, 16) for w in line.split()) for line in run.stdout.splitlines()]
    want = [tuple(int(w) for w in philox.philox4x32_10([c[:4]], c[4:])[0]) for c in cases]
    assert got == want
