// Layer norm over the last dimension of a (rows, cols) row-major array (biased variance, as
// disttorch/ops/norm.py). Forward: one block per row, saving the float32 mean and rstd = 1/sqrt(var + eps) per
// row for the backward. Backward for the input: one block per row. Backward for weight and bias: one thread per
// column summing over rows. weight and bias may be null (no affine). Statistics are in float32 for every dtype.
#include "common.cuh"

namespace {

template <typename T>
__device__ void ln_fwd(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ b, T* __restrict__ y,
                       float* __restrict__ mean_out, float* __restrict__ rstd_out, long long cols, float eps) {
    __shared__ float scratch[33];
    const long long row = blockIdx.x;
    const T* xr = x + row * cols;
    T* yr = y + row * cols;
    float s = 0.0f;
    for (long long j = threadIdx.x; j < cols; j += blockDim.x) s += to_f(xr[j]);
    const float mean = block_reduce(s, SumOp(), 0.0f, scratch) / (float)cols;
    // Two passes (sum of squared deviations) rather than E[x^2] - E[x]^2, which cancels for large means.
    float q = 0.0f;
    for (long long j = threadIdx.x; j < cols; j += blockDim.x) {
        const float d = to_f(xr[j]) - mean;
        q += d * d;
    }
    const float var = block_reduce(q, SumOp(), 0.0f, scratch) / (float)cols;
    const float rstd = rsqrtf(var + eps);
    for (long long j = threadIdx.x; j < cols; j += blockDim.x) {
        float v = (to_f(xr[j]) - mean) * rstd;
        if (w) v *= to_f(w[j]);
        if (b) v += to_f(b[j]);
        yr[j] = from_f<T>(v);
    }
    if (threadIdx.x == 0) {
        mean_out[row] = mean;
        rstd_out[row] = rstd;
    }
}

// dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)), dxhat = dy * weight, xhat = (x - mean) * rstd.
template <typename T>
__device__ void ln_bwd_input(const T* __restrict__ dy, const T* __restrict__ x, const float* __restrict__ mean,
                             const float* __restrict__ rstd, const T* __restrict__ w, T* __restrict__ dx,
                             long long cols) {
    __shared__ float scratch[33];
    const long long row = blockIdx.x;
    const T* dyr = dy + row * cols;
    const T* xr = x + row * cols;
    T* dxr = dx + row * cols;
    const float mu = mean[row], rs = rstd[row];
    float a = 0.0f, c = 0.0f;
    for (long long j = threadIdx.x; j < cols; j += blockDim.x) {
        const float dxh = to_f(dyr[j]) * (w ? to_f(w[j]) : 1.0f);
        a += dxh;
        c += dxh * (to_f(xr[j]) - mu) * rs;
    }
    a = block_reduce(a, SumOp(), 0.0f, scratch) / (float)cols;
    c = block_reduce(c, SumOp(), 0.0f, scratch) / (float)cols;
    for (long long j = threadIdx.x; j < cols; j += blockDim.x) {
        const float dxh = to_f(dyr[j]) * (w ? to_f(w[j]) : 1.0f);
        const float xh = (to_f(xr[j]) - mu) * rs;
        dxr[j] = from_f<T>(rs * (dxh - a - xh * c));
    }
}

// dweight[j] = sum_rows dy * xhat, dbias[j] = sum_rows dy; either output may be null.
template <typename T>
__device__ void ln_bwd_affine(const T* __restrict__ dy, const T* __restrict__ x, const float* __restrict__ mean,
                              const float* __restrict__ rstd, T* __restrict__ dw, T* __restrict__ db,
                              long long rows, long long cols) {
    const long long j = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= cols) return;
    float sw = 0.0f, sb = 0.0f;
    for (long long r = 0; r < rows; ++r) {
        const float g = to_f(dy[r * cols + j]);
        sw += g * (to_f(x[r * cols + j]) - mean[r]) * rstd[r];
        sb += g;
    }
    if (dw) dw[j] = from_f<T>(sw);
    if (db) db[j] = from_f<T>(sb);
}

}  // namespace

#define DT_LAYER_NORM(SUFFIX, T)                                                                                  \
    extern "C" __global__ void layer_norm_forward_##SUFFIX(const T* x, const T* w, const T* b, T* y, float* mean, \
                                                           float* rstd, long long rows, long long cols, float eps) {\
        ln_fwd<T>(x, w, b, y, mean, rstd, cols, eps);                                                             \
    }                                                                                                             \
    extern "C" __global__ void layer_norm_backward_input_##SUFFIX(const T* dy, const T* x, const float* mean,     \
                                                                  const float* rstd, const T* w, T* dx,           \
                                                                  long long rows, long long cols) {               \
        ln_bwd_input<T>(dy, x, mean, rstd, w, dx, cols);                                                          \
    }                                                                                                             \
    extern "C" __global__ void layer_norm_backward_affine_##SUFFIX(const T* dy, const T* x, const float* mean,    \
                                                                   const float* rstd, T* dw, T* db,               \
                                                                   long long rows, long long cols) {              \
        ln_bwd_affine<T>(dy, x, mean, rstd, dw, db, rows, cols);                                                  \
    }

DT_LAYER_NORM(f32, float)
DT_LAYER_NORM(f16, __half)
DT_LAYER_NORM(bf16, __nv_bfloat16)
