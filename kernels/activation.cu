// Element-wise activations over n elements (grid-stride loops), forward and backward, with the formulas of
// disttorch/ops/activation.py and disttorch/ops/_gelu.py, computed in float32 for every storage dtype:
//   gelu (exact):  y = relu(x) - |x| erfc(|x|/sqrt2) / 2         dy/dx = Phi(x) + x phi(x)
//   gelu (tanh):   y = x (1 + tanh(k (x + c x^3))) / 2            dy/dx = (1 + t)/2 + k x (1 - t^2)(1 + 3 c x^2)/2
//   silu:          y = x sigmoid(x)                                dy/dx = s (1 + x (1 - s))
// Backward kernels take the forward input x and the incoming gradient g and write g * dy/dx.
#include "common.cuh"

namespace {

constexpr float kSqrt1_2 = 0.70710678118654752440f;
constexpr float kInvSqrt2Pi = 0.39894228040143267794f;
constexpr float kGeluK = 0.79788456080286535588f;  // sqrt(2 / pi)
constexpr float kGeluC = 0.044715f;

// Written around erfc of a non-negative argument: exact in both tails (no 1 + erf cancellation).
__device__ __forceinline__ float gelu_exact(float x) { return fmaxf(x, 0.0f) - 0.5f * fabsf(x) * erfcf(fabsf(x) * kSqrt1_2); }
__device__ __forceinline__ float gelu_exact_d(float x) {
    return 0.5f * erfcf(-x * kSqrt1_2) + x * kInvSqrt2Pi * expf(-0.5f * x * x);
}
__device__ __forceinline__ float gelu_tanh(float x) { return 0.5f * x * (1.0f + tanhf(kGeluK * (x + kGeluC * x * x * x))); }
__device__ __forceinline__ float gelu_tanh_d(float x) {
    const float t = tanhf(kGeluK * (x + kGeluC * x * x * x));
    return 0.5f * (1.0f + t) + 0.5f * kGeluK * x * (1.0f - t * t) * (1.0f + 3.0f * kGeluC * x * x);
}
__device__ __forceinline__ float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }
__device__ __forceinline__ float silu(float x) { return x * sigmoid(x); }
__device__ __forceinline__ float silu_d(float x) {
    const float s = sigmoid(x);
    return s * (1.0f + x * (1.0f - s));
}

}  // namespace

#define GRID_STRIDE(i, n) \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (long long)gridDim.x * blockDim.x)

#define DT_ACT(NAME, F, DF, SUFFIX, T)                                                                            \
    extern "C" __global__ void NAME##_forward_##SUFFIX(const T* x, T* y, long long n) {                          \
        GRID_STRIDE(i, n) y[i] = from_f<T>(F(to_f(x[i])));                                                        \
    }                                                                                                             \
    extern "C" __global__ void NAME##_backward_##SUFFIX(const T* g, const T* x, T* gx, long long n) {            \
        GRID_STRIDE(i, n) gx[i] = from_f<T>(to_f(g[i]) * DF(to_f(x[i])));                                         \
    }

#define DT_ALL(SUFFIX, T)                                      \
    DT_ACT(gelu, gelu_exact, gelu_exact_d, SUFFIX, T)          \
    DT_ACT(gelu_tanh, gelu_tanh, gelu_tanh_d, SUFFIX, T)       \
    DT_ACT(silu, silu, silu_d, SUFFIX, T)

DT_ALL(f32, float)
DT_ALL(f16, __half)
DT_ALL(bf16, __nv_bfloat16)
