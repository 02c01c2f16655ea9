// What every distgrad kernel shares: 16-bit storage types converted to float, and warp/block sums.
// No CUDA header is included, so the same text compiles under NVRTC (CuPy), nvcc, and g++ with
// emulator.h (distgrad.kernels.emulator runs kernels on the CPU, one thread per CUDA thread).
#pragma once

#ifndef INFINITY  // NVRTC compiles without the C headers that define it
#define INFINITY __int_as_float(0x7f800000)
#endif

typedef long long dg_int64;

#ifndef DG_EMULATOR  // the emulator gives each launch its own buffer instead
#define DG_DYNAMIC_SHARED(T, name) \
    extern __shared__ __align__(16) unsigned char dg_dynamic_shared[]; T* name = reinterpret_cast<T*>(dg_dynamic_shared)
#endif

// bfloat16 and float16 are carried as their bits; all arithmetic is in float.
struct dg_bf16 { unsigned short bits; };
struct dg_half { unsigned short bits; };

__device__ __forceinline__ float dg_to_float(float v) { return v; }
__device__ __forceinline__ float dg_to_float(dg_bf16 v) { return __uint_as_float(((unsigned int)v.bits) << 16); }

__device__ __forceinline__ float dg_to_float(dg_half v) {
#ifdef __CUDA_ARCH__
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(v.bits));
    return f;
#else
    unsigned int sign = (v.bits & 0x8000u) << 16, exponent = (v.bits >> 10) & 0x1fu, mantissa = v.bits & 0x3ffu;
    if (exponent == 0x1f) return __uint_as_float(sign | 0x7f800000u | (mantissa << 13));  // inf, nan
    if (exponent == 0) {  // zero or subnormal: mantissa * 2^-24
        float magnitude = (float)mantissa * 5.9604644775390625e-8f;
        return sign ? -magnitude : magnitude;
    }
    return __uint_as_float(sign | ((exponent + 112u) << 23) | (mantissa << 13));
#endif
}

template <class T> __device__ __forceinline__ T dg_from_float(float v);
template <> __device__ __forceinline__ float dg_from_float<float>(float v) { return v; }

template <> __device__ __forceinline__ dg_bf16 dg_from_float<dg_bf16>(float v) {
    unsigned int u = __float_as_uint(v);
    dg_bf16 out;
    if ((u & 0x7fffffffu) > 0x7f800000u) { out.bits = (unsigned short)((u >> 16) | 0x40u); return out; }  // nan stays nan
    u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest, ties to even
    out.bits = (unsigned short)(u >> 16);
    return out;
}

template <> __device__ __forceinline__ dg_half dg_from_float<dg_half>(float v) {
    dg_half out;
#ifdef __CUDA_ARCH__
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(out.bits) : "f"(v));
#else
    unsigned int u = __float_as_uint(v), sign = (u >> 16) & 0x8000u, magnitude = u & 0x7fffffffu;
    if (magnitude > 0x7f800000u) { out.bits = (unsigned short)(sign | 0x7e00u); return out; }  // nan
    if (magnitude >= 0x477ff000u) { out.bits = (unsigned short)(sign | 0x7c00u); return out; }  // rounds to inf
    if (magnitude < 0x38800000u) {  // below 2^-14: a subnormal half, rounded in units of 2^-24
        float scaled = __uint_as_float(magnitude) * 16777216.0f;  // exact: a power-of-two scaling
        float whole = (float)(int)scaled, fraction = scaled - whole;
        unsigned int m = (unsigned int)whole;
        if (fraction > 0.5f || (fraction == 0.5f && (m & 1u))) m += 1u;
        out.bits = (unsigned short)(sign | m);
        return out;
    }
    unsigned int rounded = magnitude + 0xfffu + ((magnitude >> 13) & 1u);  // ties to even at bit 13
    out.bits = (unsigned short)(sign | ((rounded - (112u << 23)) >> 13));
#endif
    return out;
}

template <class T> __device__ __forceinline__ float dg_load(const T* p, dg_int64 i) { return dg_to_float(p[i]); }
template <class T> __device__ __forceinline__ void dg_store(T* p, dg_int64 i, float v) { p[i] = dg_from_float<T>(v); }

__device__ __forceinline__ float dg_warp_sum(float v) {
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}

__device__ __forceinline__ float dg_warp_max(float v) {
    for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
    return v;
}

// Adds one value to a running (max, sum of exp(x - max)): one exponential per value.
__device__ __forceinline__ void dg_online_add(float& m, float& s, float v) {
    if (v > m) { s = s * expf(m - v) + 1.0f; m = v; }
    else if (v != -INFINITY) s += expf(v - m);  // a nan v makes s nan, as the row's softmax is
}

// The running (max, sum of exp(x - max)) of an online softmax, merged with another such pair.
__device__ __forceinline__ void dg_merge_softmax(float& m, float& s, float other_m, float other_s) {
    float top = fmaxf(m, other_m);
    if (top == -INFINITY) { m = top; s = 0.0f; return; }
    s = s * expf(m - top) + other_s * expf(other_m - top);
    m = top;
}

__device__ __forceinline__ void dg_warp_merge_softmax(float& m, float& s) {
    for (int offset = 16; offset > 0; offset >>= 1) {
        float other_m = __shfl_xor_sync(0xffffffffu, m, offset);
        float other_s = __shfl_xor_sync(0xffffffffu, s, offset);
        dg_merge_softmax(m, s, other_m, other_s);
    }
}

// Block-wide reductions for one-dimensional blocks of whole warps (at most 32 warps). ``scratch``
// holds 32 floats of shared memory; every thread gets the result.
__device__ __forceinline__ float dg_block_sum(float v, float* scratch) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = dg_warp_sum(v);
    __syncthreads();  // scratch may still be read by a previous reduction
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < warps ? scratch[lane] : 0.0f;
    return dg_warp_sum(v);
}

__device__ __forceinline__ void dg_block_merge_softmax(float& m, float& s, float* scratch) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    dg_warp_merge_softmax(m, s);
    __syncthreads();
    if (lane == 0) { scratch[warp] = m; scratch[32 + warp] = s; }
    __syncthreads();
    m = lane < warps ? scratch[lane] : -INFINITY;
    s = lane < warps ? scratch[32 + lane] : 0.0f;
    dg_warp_merge_softmax(m, s);
}
