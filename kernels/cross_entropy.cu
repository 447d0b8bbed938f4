// Fused softmax-cross-entropy over the last dimension of (rows, C) row-major logits with int64 class targets:
// PyTorch's cross_entropy(x, t, weight, ignore_index, reduction='none', label_smoothing=eps), as
// disttorch/ops/loss.py computes it. One block per row; blockDim.x is a multiple of 32 (at most 1024).
//   lse_i  = logsumexp(x_i)                                   (saved, float32, for the backward)
//   loss_i = (1 - eps) w[t_i] (lse_i - x_i[t_i]) + eps/C (W lse_i - sum_c w_c x_ic),  W = sum_c w_c
//   dx_ij  = g_i [(1 - eps) w[t_i] (p_ij - [j == t_i]) + eps/C (W p_ij - w_j)],      p_ij = exp(x_ij - lse_i)
// with w = 1 when weight is null. Rows whose target is ignore_index get loss 0 and gradient 0. A target outside
// [0, C) (other than ignore_index) gives loss nan, gradient 0 and sets *bad = 1 (when bad is not null): the
// check stays on the device, the caller reads the flag when it wants to raise. The loss and the statistics are
// float32 for every storage dtype; the reductions ('mean' divides by sum_i w[t_i] over the kept rows) are left
// to the caller, which passes the upstream gradient as float32 g with grad_stride 1 (one per row) or 0 (one
// value for every row, e.g. 1 / total weight for 'mean').
#include "common.cuh"

namespace {

__host__ __device__ __forceinline__ float class_weight(const float* w, long long j) { return w ? w[j] : 1.0f; }

template <typename T>
__host__ __device__ void ce_fwd_row(const RowTeam& team, const T* xr, long long cols, long long t, const float* w,
                                    long long ignore_index, float eps, float* loss, float* lse_out, int* bad) {
    const float ninf = neg_inf_f();
    float m = ninf;
    for (long long j = team.rank(); j < cols; j += team.size()) m = fmaxf(m, to_f(xr[j]));
    m = team.reduce(m, MaxOp(), ninf);
    const float shift = m == ninf ? 0.0f : m;  // an all -inf row: lse = -inf, as the reference
    float s = 0.0f;
    for (long long j = team.rank(); j < cols; j += team.size()) s += expf(to_f(xr[j]) - shift);
    s = team.reduce(s, SumOp(), 0.0f);
    const float lse = shift + logf(s);
    float swx = 0.0f, sw = 0.0f;
    if (eps > 0.0f) {  // eps is the same for the whole block: every thread takes the same branch
        for (long long j = team.rank(); j < cols; j += team.size()) {
            const float wj = class_weight(w, j);
            swx += wj * to_f(xr[j]);
            sw += wj;
        }
        swx = team.reduce(swx, SumOp(), 0.0f);
        sw = team.reduce(sw, SumOp(), 0.0f);
    }
    if (team.rank() != 0) return;
    *lse_out = lse;
    if (t == ignore_index) {
        *loss = 0.0f;
    } else if (t < 0 || t >= cols) {
        *loss = nan_f();
        if (bad) *bad = 1;
    } else {
        float l = (1.0f - eps) * class_weight(w, t) * (lse - to_f(xr[t]));
        if (eps > 0.0f) l += eps / (float)cols * (sw * lse - swx);
        *loss = l;
    }
}

template <typename T>
__host__ __device__ void ce_bwd_row(const RowTeam& team, const T* xr, T* gr, long long cols, long long t,
                                    const float* w, long long ignore_index, float eps, float lse, float g) {
    if (t == ignore_index || t < 0 || t >= cols) {  // the same for the whole row: no thread skips a reduction
        for (long long j = team.rank(); j < cols; j += team.size()) gr[j] = from_f<T>(0.0f);
        return;
    }
    float wsum = (float)cols;
    if (eps > 0.0f && w) {
        float s = 0.0f;
        for (long long j = team.rank(); j < cols; j += team.size()) s += w[j];
        wsum = team.reduce(s, SumOp(), 0.0f);
    }
    const float a = g * (1.0f - eps) * class_weight(w, t), b = g * eps / (float)cols;
    for (long long j = team.rank(); j < cols; j += team.size()) {
        const float p = expf(to_f(xr[j]) - lse);
        float v = a * (p - (j == t ? 1.0f : 0.0f));
        if (eps > 0.0f) v += b * (wsum * p - class_weight(w, j));
        gr[j] = from_f<T>(v);
    }
}

}  // namespace

#define DT_CROSS_ENTROPY(SUFFIX, T)                                                                               \
    extern "C" __global__ void cross_entropy_forward_##SUFFIX(                                                    \
        const T* x, const long long* target, const float* weight, float* loss, float* lse, int* bad,             \
        long long rows, long long cols, long long ignore_index, float label_smoothing) {                          \
        __shared__ float scratch[33];                                                                             \
        const long long r = blockIdx.x;                                                                           \
        ce_fwd_row<T>(RowTeam{scratch}, x + r * cols, cols, target[r], weight, ignore_index, label_smoothing,     \
                      loss + r, lse + r, bad);                                                                    \
    }                                                                                                             \
    extern "C" __global__ void cross_entropy_backward_##SUFFIX(                                                   \
        const T* x, const long long* target, const float* weight, const float* lse, const float* grad_loss,      \
        long long grad_stride, T* grad_x, long long rows, long long cols, long long ignore_index,                \
        float label_smoothing) {                                                                                  \
        __shared__ float scratch[33];                                                                             \
        const long long r = blockIdx.x;                                                                           \
        ce_bwd_row<T>(RowTeam{scratch}, x + r * cols, grad_x + r * cols, cols, target[r], weight, ignore_index,   \
                      label_smoothing, lse[r], grad_loss[r * grad_stride]);                                       \
    }

DT_CROSS_ENTROPY(f32, float)
DT_CROSS_ENTROPY(f16, __half)
DT_CROSS_ENTROPY(bf16, __nv_bfloat16)
