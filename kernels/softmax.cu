// Softmax and log-softmax over the last dimension of a (rows, cols) row-major array.
// One block per row; blockDim.x is a multiple of 32 (at most 1024). Sums and maxima are taken in float32 for
// every storage dtype, and the input is shifted by the row maximum first, as disttorch/ops/softmax.py does.
#include "common.cuh"

namespace {

// Spelled by its bits: NVRTC (CuPy's compiler) does not define math.h's INFINITY.
#define kNegInf __int_as_float(0xff800000)

template <typename T, bool LOG>
__device__ void softmax_fwd(const T* __restrict__ x, T* __restrict__ y, long long cols) {
    __shared__ float scratch[33];
    const long long row = blockIdx.x;
    const T* xr = x + row * cols;
    T* yr = y + row * cols;
    float m = kNegInf;
    for (long long j = threadIdx.x; j < cols; j += blockDim.x) m = fmaxf(m, to_f(xr[j]));
    m = block_reduce(m, MaxOp(), kNegInf, scratch);
    if (m == kNegInf) m = 0.0f;  // an all -inf row: exp(-inf - 0) = 0 gives nan from 0/0, as the reference
    float s = 0.0f;
    for (long long j = threadIdx.x; j < cols; j += blockDim.x) s += expf(to_f(xr[j]) - m);
    s = block_reduce(s, SumOp(), 0.0f, scratch);
    if (LOG) {
        const float lse = logf(s);
        for (long long j = threadIdx.x; j < cols; j += blockDim.x) yr[j] = from_f<T>(to_f(xr[j]) - m - lse);
    } else {
        const float inv = 1.0f / s;
        for (long long j = threadIdx.x; j < cols; j += blockDim.x) yr[j] = from_f<T>(expf(to_f(xr[j]) - m) * inv);
    }
}

// softmax:     gx = y * (g - sum(g * y))
// log_softmax: gx = g - exp(y) * sum(g)
template <typename T, bool LOG>
__device__ void softmax_bwd(const T* __restrict__ g, const T* __restrict__ y, T* __restrict__ gx, long long cols) {
    __shared__ float scratch[33];
    const long long row = blockIdx.x;
    const T* gr = g + row * cols;
    const T* yr = y + row * cols;
    T* out = gx + row * cols;
    float s = 0.0f;
    for (long long j = threadIdx.x; j < cols; j += blockDim.x) s += LOG ? to_f(gr[j]) : to_f(gr[j]) * to_f(yr[j]);
    s = block_reduce(s, SumOp(), 0.0f, scratch);
    for (long long j = threadIdx.x; j < cols; j += blockDim.x) {
        const float gv = to_f(gr[j]), yv = to_f(yr[j]);
        out[j] = from_f<T>(LOG ? gv - expf(yv) * s : yv * (gv - s));
    }
}

}  // namespace

#define DT_SOFTMAX(SUFFIX, T)                                                                                     \
    extern "C" __global__ void softmax_forward_##SUFFIX(const T* x, T* y, long long rows, long long cols) {      \
        softmax_fwd<T, false>(x, y, cols);                                                                        \
    }                                                                                                             \
    extern "C" __global__ void log_softmax_forward_##SUFFIX(const T* x, T* y, long long rows, long long cols) {  \
        softmax_fwd<T, true>(x, y, cols);                                                                         \
    }                                                                                                             \
    extern "C" __global__ void softmax_backward_##SUFFIX(const T* g, const T* y, T* gx, long long rows,          \
                                                         long long cols) {                                        \
        softmax_bwd<T, false>(g, y, gx, cols);                                                                    \
    }                                                                                                             \
    extern "C" __global__ void log_softmax_backward_##SUFFIX(const T* g, const T* y, T* gx, long long rows,      \
                                                             long long cols) {                                    \
        softmax_bwd<T, true>(g, y, gx, cols);                                                                     \
    }

DT_SOFTMAX(f32, float)
DT_SOFTMAX(f16, __half)
DT_SOFTMAX(bf16, __nv_bfloat16)
