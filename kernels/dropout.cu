// Dropout with a counter-based mask (Philox4x32-10, Salmon et al. 2011), so the mask is drawn on the device
// from (seed, offset) with no host round trip, and the same (seed, offset) always gives the same mask.
// Element i uses the Philox block with counter (i / 4 as 64 bits, offset as 64 bits) and key seed (64 bits),
// output word i % 4; u = (word >> 8) * 2^-24 is uniform on [0, 1) and the element is kept when u < keep_prob
// (Bernoulli(1 - p), as disttorch/ops/dropout.py). Kept values are scaled by scale = 1 / (1 - p); the uint8
// mask is saved for the backward, gx = g * mask * scale. Callers use a fresh offset per call.
#include "common.cuh"

struct Philox4 { unsigned int v[4]; };

// __host__ too, so the generator can be checked against the published known-answer vectors on a CPU.
__host__ __device__ inline Philox4 philox4x32_10(unsigned int c0, unsigned int c1, unsigned int c2, unsigned int c3,
                                                 unsigned int k0, unsigned int k1) {
    const unsigned int M0 = 0xD2511F53u, M1 = 0xCD9E8D57u, W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
    for (int r = 0; r < 10; ++r) {
        if (r) {
            k0 += W0;
            k1 += W1;
        }
        const unsigned long long p0 = (unsigned long long)M0 * c0, p1 = (unsigned long long)M1 * c2;
        const unsigned int hi0 = (unsigned int)(p0 >> 32), lo0 = (unsigned int)p0;
        const unsigned int hi1 = (unsigned int)(p1 >> 32), lo1 = (unsigned int)p1;
        const unsigned int n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
        c0 = n0;
        c1 = lo1;
        c2 = n2;
        c3 = lo0;
    }
    Philox4 out = {{c0, c1, c2, c3}};
    return out;
}

namespace {

template <typename T>
__device__ void dropout_fwd(const T* __restrict__ x, T* __restrict__ y, unsigned char* __restrict__ mask,
                            long long n, float keep_prob, float scale, unsigned long long seed,
                            unsigned long long offset) {
    const long long groups = (n + 3) / 4;
    for (long long q = (long long)blockIdx.x * blockDim.x + threadIdx.x; q < groups; q += (long long)gridDim.x * blockDim.x) {
        const Philox4 r = philox4x32_10((unsigned int)q, (unsigned int)((unsigned long long)q >> 32),
                                        (unsigned int)offset, (unsigned int)(offset >> 32), (unsigned int)seed,
                                        (unsigned int)(seed >> 32));
        for (int k = 0; k < 4; ++k) {
            const long long i = q * 4 + k;
            if (i >= n) break;
            const float u = (float)(r.v[k] >> 8) * 5.9604644775390625e-08f;  // 2^-24
            const bool keep = u < keep_prob;
            mask[i] = keep;
            y[i] = from_f<T>(keep ? to_f(x[i]) * scale : 0.0f);
        }
    }
}

}  // namespace

#define DT_DROPOUT(SUFFIX, T)                                                                                     \
    extern "C" __global__ void dropout_forward_##SUFFIX(const T* x, T* y, unsigned char* mask, long long n,       \
                                                        float keep_prob, float scale, unsigned long long seed,    \
                                                        unsigned long long offset) {                              \
        dropout_fwd<T>(x, y, mask, n, keep_prob, scale, seed, offset);                                            \
    }                                                                                                             \
    extern "C" __global__ void dropout_backward_##SUFFIX(const T* g, const unsigned char* mask, T* gx, long long n,\
                                                         float scale) {                                           \
        for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;                               \
             i += (long long)gridDim.x * blockDim.x)                                                              \
            gx[i] = from_f<T>(mask[i] ? to_f(g[i]) * scale : 0.0f);                                               \
    }

DT_DROPOUT(f32, float)
DT_DROPOUT(f16, __half)
DT_DROPOUT(bf16, __nv_bfloat16)
