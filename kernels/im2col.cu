// im2col and col2im for 2-d convolution, in the layouts of F.unfold / F.fold (disttorch/ops/conv.py):
//   image x (N, C, H, W)  <->  columns (N, C*kH*kW, OH*OW); column row c*kH*kW + ki*kW + kj, column oh*OW + ow,
//   OH = (H + 2 pH - dH (kH - 1) - 1) / sH + 1 (and likewise OW); positions on the zero padding read as 0.
// im2col: one thread per column element (grid-stride), so consecutive threads write consecutive columns.
// col2im: one thread per image element, gathering the (at most kH*kW) column entries that cover it and summing
// them in float32; nothing is written twice, so no atomicAdd is needed and the sum order is fixed
// (deterministic). The index code is __host__ __device__: tests/kernels/test_host_twins.py runs it on the CPU, with
// int and with long long indices.
#include "common.cuh"

namespace {

// Index arithmetic in I: int when every index fits (64-bit division is several times slower on the GPU), else
// long long. The kernels pick one at run time from the element counts.
template <typename I>
struct Conv2dGeom {
    I n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow;
};

// Index in x of column element i, or -1 where it reads the zero padding.
template <typename I>
__host__ __device__ __forceinline__ I im2col_source(I i, const Conv2dGeom<I>& g) {
    const I l = i % (g.oh * g.ow);
    I r = i / (g.oh * g.ow);
    const I k = r % (g.kh * g.kw);
    r /= g.kh * g.kw;  // r = n * C + c
    const I oh = l / g.ow, ow = l % g.ow, ki = k / g.kw, kj = k % g.kw;
    const I y = oh * g.sh - g.ph + ki * g.dh, x = ow * g.sw - g.pw + kj * g.dw;
    if (y < 0 || y >= g.h || x < 0 || x >= g.w) return -1;
    return (r * g.h + y) * g.w + x;
}

// Sum of the column entries that im2col copies image element i into (the adjoint of im2col).
template <typename T, typename I>
__host__ __device__ float col2im_gather(const T* cols, I i, const Conv2dGeom<I>& g) {
    const I x = i % g.w;
    I r = i / g.w;
    const I y = r % g.h;
    r /= g.h;  // r = n * C + c
    const I kvol = g.kh * g.kw, npos = g.oh * g.ow;
    float acc = 0.0f;
    for (I ki = 0; ki < g.kh; ++ki) {
        const I ys = y + g.ph - ki * g.dh;  // = oh * sH when a window row covers y
        if (ys < 0 || ys % g.sh != 0 || ys / g.sh >= g.oh) continue;
        const I oh = ys / g.sh;
        for (I kj = 0; kj < g.kw; ++kj) {
            const I xs = x + g.pw - kj * g.dw;
            if (xs < 0 || xs % g.sw != 0 || xs / g.sw >= g.ow) continue;
            acc += to_f(cols[(r * kvol + ki * g.kw + kj) * npos + oh * g.ow + xs / g.sw]);
        }
    }
    return acc;
}

// The largest index either kernel forms is below max(image size, column count) + the padding offsets; int is
// used when both counts stay under 2^31 / 2, leaving room for the intermediate (r * kvol + k) * npos products.
__host__ __device__ __forceinline__ bool fits_int(long long image, long long ncols) {
    return image < (1LL << 30) && ncols < (1LL << 30);
}

template <typename T, typename I>
__device__ void im2col_run(const T* x, T* cols, const Conv2dGeom<I>& g) {
    const I total = g.n * g.c * g.kh * g.kw * g.oh * g.ow;
    for (I i = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x; i < total; i += (I)gridDim.x * (I)blockDim.x) {
        const I s = im2col_source(i, g);
        cols[i] = s < 0 ? from_f<T>(0.0f) : x[s];
    }
}

template <typename T, typename I>
__device__ void col2im_run(const T* cols, T* x, const Conv2dGeom<I>& g) {
    const I total = g.n * g.c * g.h * g.w;
    for (I i = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x; i < total; i += (I)gridDim.x * (I)blockDim.x)
        x[i] = from_f<T>(col2im_gather<T, I>(cols, i, g));
}

}  // namespace

#define GEOM_PARAMS                                                                                               \
    long long n, long long c, long long h, long long w, long long kh, long long kw, long long sh, long long sw,   \
        long long ph, long long pw, long long dh, long long dw, long long oh, long long ow
#define GEOM(I) Conv2dGeom<I>{(I)n, (I)c, (I)h, (I)w, (I)kh, (I)kw, (I)sh, (I)sw, (I)ph, (I)pw, (I)dh, (I)dw, (I)oh, (I)ow}

#define DT_IM2COL(SUFFIX, T)                                                                                      \
    extern "C" __global__ void im2col_##SUFFIX(const T* x, T* cols, GEOM_PARAMS) {                                \
        if (fits_int(n * c * h * w, n * c * kh * kw * oh * ow)) im2col_run<T, int>(x, cols, GEOM(int));          \
        else im2col_run<T, long long>(x, cols, GEOM(long long));                                                  \
    }                                                                                                             \
    extern "C" __global__ void col2im_##SUFFIX(const T* cols, T* x, GEOM_PARAMS) {                                \
        if (fits_int(n * c * h * w, n * c * kh * kw * oh * ow)) col2im_run<T, int>(cols, x, GEOM(int));          \
        else col2im_run<T, long long>(cols, x, GEOM(long long));                                                  \
    }

DT_IM2COL(f32, float)
DT_IM2COL(f16, __half)
DT_IM2COL(bf16, __nv_bfloat16)
