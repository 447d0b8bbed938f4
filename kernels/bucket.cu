// Gradient bucket pack/unpack for DDP: one launch copies a list of gradients into (pack) or out of (unpack) one
// flat bucket, optionally casting (float32 gradients communicated as float16/bfloat16) and scaling (e.g. by
// 1 / world_size) on the way. ptrs holds the gradients' device addresses, offsets each gradient's
// first element in the bucket and numels its size; block b copies elements [block_start[b],
// block_start[b] + chunk) of gradient block_tensor[b]. Entry points are named bucket_{pack,unpack}_<grad>_<bucket>.
#include "common.cuh"

namespace {

template <typename G, typename B, bool PACK>
__device__ void bucket_copy(const unsigned long long* __restrict__ ptrs, const long long* __restrict__ offsets,
                            const long long* __restrict__ numels, const int* __restrict__ block_tensor,
                            const long long* __restrict__ block_start, B* bucket, long long chunk, float scale) {
    const int t = block_tensor[blockIdx.x];
    G* grad = reinterpret_cast<G*>(ptrs[t]);
    B* flat = bucket + offsets[t];
    const long long start = block_start[blockIdx.x];
    const long long end = min(start + chunk, numels[t]);
    for (long long i = start + threadIdx.x; i < end; i += blockDim.x) {
        if (PACK) flat[i] = from_f<B>(to_f(grad[i]) * scale);
        else grad[i] = from_f<G>(to_f(flat[i]) * scale);
    }
}

}  // namespace

#define DT_BUCKET(GS, GT, BS, BT)                                                                                 \
    extern "C" __global__ void bucket_pack_##GS##_##BS(const unsigned long long* ptrs, const long long* offsets,  \
                                                       const long long* numels, const int* block_tensor,          \
                                                       const long long* block_start, BT* bucket, long long chunk, \
                                                       float scale) {                                             \
        bucket_copy<GT, BT, true>(ptrs, offsets, numels, block_tensor, block_start, bucket, chunk, scale);        \
    }                                                                                                             \
    extern "C" __global__ void bucket_unpack_##GS##_##BS(const unsigned long long* ptrs, const long long* offsets,\
                                                         const long long* numels, const int* block_tensor,        \
                                                         const long long* block_start, BT* bucket,                \
                                                         long long chunk, float scale) {                          \
        bucket_copy<GT, BT, false>(ptrs, offsets, numels, block_tensor, block_start, bucket, chunk, scale);       \
    }

DT_BUCKET(f32, float, f32, float)
DT_BUCKET(f32, float, f16, __half)
DT_BUCKET(f32, float, bf16, __nv_bfloat16)
DT_BUCKET(f16, __half, f16, __half)
DT_BUCKET(bf16, __nv_bfloat16, bf16, __nv_bfloat16)
