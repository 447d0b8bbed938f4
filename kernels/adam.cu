// Multi-tensor Adam / AdamW update (amsgrad off), the formulas of disttorch/optim/_functional.py:
//   param *= decay                               (AdamW: decay = 1 - lr * weight_decay, else 1)
//   g = (maximize ? -grad : grad) + l2 * param   (Adam: l2 = weight_decay, else 0: not added)
//   exp_avg.lerp_(g, w), w = 1 - beta1           (PyTorch's two lerp branches)
//   exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * g * g
//   param += neg_step_size * exp_avg / (sqrt(exp_avg_sq) / bc2_sqrt + eps)
// The host precomputes neg_step_size = -lr / (1 - beta1^step), bc2_sqrt = sqrt(1 - beta2^step) and, in double,
// w1 = 1 - beta1 and w2 = 1 - beta2: 1.0f - beta2 in float32 loses about 1e-5 of (1 - beta2) for beta2 = 0.999
// (the CPU rule's factor comes from double), while 1.0f - w is exact for w in [0.5, 1] (Sterbenz).
// One launch updates a list of tensors: ptrs holds 4 * ntensors device addresses (all params, then all
// grads, exp_avgs, exp_avg_sqs); block b updates elements [block_start[b], block_start[b] + chunk) of tensor
// block_tensor[b] (clipped to numels[that tensor]). Arithmetic is float32; storage is the tensors' dtype.
#include "common.cuh"

namespace {

template <typename T>
__device__ void adam_chunk(const unsigned long long* __restrict__ ptrs, const long long* __restrict__ numels,
                           const int* __restrict__ block_tensor, const long long* __restrict__ block_start,
                           int ntensors, long long chunk, float w1, float w2, float eps, float l2, float decay,
                           float neg_step_size, float bc2_sqrt, int maximize) {
    const int t = block_tensor[blockIdx.x];
    T* p = reinterpret_cast<T*>(ptrs[t]);
    const T* gr = reinterpret_cast<const T*>(ptrs[ntensors + t]);
    T* m = reinterpret_cast<T*>(ptrs[2 * ntensors + t]);
    T* v = reinterpret_cast<T*>(ptrs[3 * ntensors + t]);
    const long long start = block_start[blockIdx.x];
    const long long end = min(start + chunk, numels[t]);
    const float w = w1, beta2 = 1.0f - w2;
    for (long long i = start + threadIdx.x; i < end; i += blockDim.x) {
        float pv = to_f(p[i]) * decay;
        float g = to_f(gr[i]);
        if (maximize) g = -g;
        if (l2 != 0.0f) g += l2 * pv;  // skipped at 0, as the reference: 0 * inf would be nan
        const float mv0 = to_f(m[i]);
        const float mv = w < 0.5f ? mv0 + w * (g - mv0) : g - (g - mv0) * (1.0f - w);
        const float vv = beta2 * to_f(v[i]) + w2 * g * g;
        pv += neg_step_size * mv / (sqrtf(vv) / bc2_sqrt + eps);
        p[i] = from_f<T>(pv);
        m[i] = from_f<T>(mv);
        v[i] = from_f<T>(vv);
    }
}

}  // namespace

#define DT_ADAM(SUFFIX, T)                                                                                        \
    extern "C" __global__ void adam_multi_tensor_##SUFFIX(                                                        \
        const unsigned long long* ptrs, const long long* numels, const int* block_tensor,                         \
        const long long* block_start, int ntensors, long long chunk, float w1, float w2, float eps,               \
        float l2, float decay, float neg_step_size, float bc2_sqrt, int maximize) {                               \
        adam_chunk<T>(ptrs, numels, block_tensor, block_start, ntensors, chunk, w1, w2, eps, l2, decay,           \
                      neg_step_size, bc2_sqrt, maximize);                                                         \
    }

DT_ADAM(f32, float)
DT_ADAM(f16, __half)
DT_ADAM(bf16, __nv_bfloat16)
