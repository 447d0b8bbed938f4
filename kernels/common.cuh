// Shared by the kernel sources: storage-dtype conversions (arithmetic is float32 for every storage dtype) and
// warp/block reductions. Included as "common.cuh"; disttorch.kernels.source() inlines it for NVRTC, which compiles
// a source string without its directory. The conversions and RowTeam are __host__ too, so that the row and index
// code of cross_entropy.cu and im2col.cu also compiles for the CPU and is checked there without a GPU
// (tests/kernels/test_host_twins.py).
#pragma once
#include <cuda_fp16.h>
#include <cuda_bf16.h>

namespace {

__host__ __device__ __forceinline__ float to_f(float v) { return v; }
__host__ __device__ __forceinline__ float to_f(__half v) { return __half2float(v); }
__host__ __device__ __forceinline__ float to_f(__nv_bfloat16 v) { return __bfloat162float(v); }
template <typename T> __host__ __device__ __forceinline__ T from_f(float v);
template <> __host__ __device__ __forceinline__ float from_f<float>(float v) { return v; }
template <> __host__ __device__ __forceinline__ __half from_f<__half>(float v) { return __float2half_rn(v); }
template <> __host__ __device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

struct SumOp { __device__ float operator()(float a, float b) const { return a + b; } };
struct MaxOp { __device__ float operator()(float a, float b) const { return fmaxf(a, b); } };

template <typename Op>
__device__ __forceinline__ float warp_reduce(float v, Op op) {
    for (int off = 16; off > 0; off >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, off));
    return v;
}

// Every thread of the block gets the reduction of all threads' ``v``. ``scratch`` holds 33 floats; the
// trailing __syncthreads lets a caller reuse it for the next reduction.
template <typename Op>
__device__ float block_reduce(float v, Op op, float identity, float* scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = (blockDim.x + 31) >> 5;
    v = warp_reduce(v, op);
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    if (warp == 0) {
        float w = lane < nwarps ? scratch[lane] : identity;
        w = warp_reduce(w, op);
        if (lane == 0) scratch[32] = w;
    }
    __syncthreads();
    float r = scratch[32];
    __syncthreads();
    return r;
}

// Float constants spelled by their bits, usable on the host and under NVRTC (which lacks math.h's INFINITY/NAN).
__host__ __device__ __forceinline__ float bits_to_f(unsigned int u) {
    union { unsigned int u; float f; } v = {u};
    return v.f;
}
__host__ __device__ __forceinline__ float neg_inf_f() { return bits_to_f(0xff800000u); }
__host__ __device__ __forceinline__ float nan_f() { return bits_to_f(0x7fc00000u); }

// The threads of one block sharing one row. Compiled for the host it is a single thread whose reductions are the
// identity, so the same row code runs sequentially on the CPU (the host-twin tests).
struct RowTeam {
    float* scratch;  // 33 floats of shared memory (device only)
    __host__ __device__ long long rank() const {
#ifdef __CUDA_ARCH__
        return threadIdx.x;
#else
        return 0;
#endif
    }
    __host__ __device__ long long size() const {
#ifdef __CUDA_ARCH__
        return blockDim.x;
#else
        return 1;
#endif
    }
    template <typename Op>
    __host__ __device__ float reduce(float v, Op op, float identity) const {
#ifdef __CUDA_ARCH__
        return block_reduce(v, op, identity, scratch);
#else
        return v;
#endif
    }
};

}  // namespace
