// Elementwise kernels over contiguous arrays, grid-stride loops of one element per step:
//   bias_act_forward   out = act(x + bias[i % features])        (bias may be null; act as ACT below)
//   bias_act_backward  grad_x = grad * act'(x + bias[...])      (the bias gradient is a column sum, done outside)
//   dropout_forward    out = keep(i) ? x * scale : 0, plus residual when given (dropout + residual add)
//   dropout_backward   grad_x = keep(i) ? grad * scale : 0      (the mask is recomputed, never stored)
// keep(i) hashes (seed, offset + i): a counter-based generator, so a CUDA graph replays it with a new offset.
#include "common.cuh"

#define DG_ACT_IDENTITY 0
#define DG_ACT_RELU 1
#define DG_ACT_GELU 2       // x * Phi(x), Phi the normal CDF (erf)
#define DG_ACT_GELU_TANH 3  // PyTorch's approximate='tanh'

#define DG_SQRT_HALF 0.70710678118654752f
#define DG_INV_SQRT_2PI 0.39894228040143268f
#define DG_SQRT_2_OVER_PI 0.79788456080286536f
#define DG_KAPPA 0.044715f

template <int ACT> __device__ __forceinline__ float dg_activation(float v) {
    if (ACT == DG_ACT_RELU) return v > 0.0f ? v : 0.0f;
    if (ACT == DG_ACT_GELU) return 0.5f * v * (1.0f + erff(v * DG_SQRT_HALF));
    if (ACT == DG_ACT_GELU_TANH) return 0.5f * v * (1.0f + tanhf(DG_SQRT_2_OVER_PI * (v + DG_KAPPA * v * v * v)));
    return v;
}

template <int ACT> __device__ __forceinline__ float dg_activation_derivative(float v) {
    if (ACT == DG_ACT_RELU) return v > 0.0f ? 1.0f : 0.0f;
    if (ACT == DG_ACT_GELU) return 0.5f * (1.0f + erff(v * DG_SQRT_HALF)) + v * DG_INV_SQRT_2PI * expf(-0.5f * v * v);
    if (ACT == DG_ACT_GELU_TANH) {
        float t = tanhf(DG_SQRT_2_OVER_PI * (v + DG_KAPPA * v * v * v));
        return 0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * DG_SQRT_2_OVER_PI * (1.0f + 3.0f * DG_KAPPA * v * v);
    }
    return 1.0f;
}

template <class T, int ACT>
__global__ void bias_act_forward(const T* x, const T* bias, T* out, dg_int64 n, int features) {
    dg_int64 step = (dg_int64)blockDim.x * gridDim.x;
    for (dg_int64 i = (dg_int64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step) {
        float v = dg_load(x, i);
        if (bias != nullptr) v += dg_load(bias, i % features);
        dg_store(out, i, dg_activation<ACT>(v));
    }
}

template <class T, int ACT>
__global__ void bias_act_backward(const T* grad, const T* x, const T* bias, T* grad_x, dg_int64 n, int features) {
    dg_int64 step = (dg_int64)blockDim.x * gridDim.x;
    for (dg_int64 i = (dg_int64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step) {
        float v = dg_load(x, i);
        if (bias != nullptr) v += dg_load(bias, i % features);
        dg_store(grad_x, i, dg_load(grad, i) * dg_activation_derivative<ACT>(v));
    }
}

// SplitMix64's finaliser: a bijection of 64-bit words that mixes every input bit into every output bit.
__device__ __forceinline__ unsigned long long dg_mix64(unsigned long long z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

// Element ``counter`` is kept when its uniform draw (24 bits, in [0, 1)) is at least p.
__device__ __forceinline__ bool dg_keep(unsigned long long seed, unsigned long long counter, float p) {
    unsigned long long h = dg_mix64(seed + 0x9e3779b97f4a7c15ULL * (counter + 1ULL));
    return (float)(h >> 40) * 5.9604644775390625e-8f >= p;
}

// ``offset_base`` (null outside CUDA graphs) points at a device counter that a captured step advances
// after each replay, so that every replay draws a new mask.
template <class T>
__global__ void dropout_forward(const T* x, const T* residual, T* out, dg_int64 n, float p, float scale,
                                unsigned long long seed, unsigned long long offset,
                                const unsigned long long* offset_base) {
    if (offset_base != nullptr) offset += *offset_base;
    dg_int64 step = (dg_int64)blockDim.x * gridDim.x;
    for (dg_int64 i = (dg_int64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step) {
        float v = dg_keep(seed, offset + (unsigned long long)i, p) ? dg_load(x, i) * scale : 0.0f;
        if (residual != nullptr) v += dg_load(residual, i);
        dg_store(out, i, v);
    }
}

template <class T>
__global__ void dropout_backward(const T* grad, T* grad_x, dg_int64 n, float p, float scale, unsigned long long seed,
                                 unsigned long long offset, const unsigned long long* offset_base) {
    if (offset_base != nullptr) offset += *offset_base;
    dg_int64 step = (dg_int64)blockDim.x * gridDim.x;
    for (dg_int64 i = (dg_int64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step)
        dg_store(grad_x, i, dg_keep(seed, offset + (unsigned long long)i, p) ? dg_load(grad, i) * scale : 0.0f);
}

// Adds ``delta`` to a device counter: launched at the end of a captured step (one thread).
__global__ void advance_counter(unsigned long long* counter, unsigned long long delta) {
    if (blockIdx.x == 0 && threadIdx.x == 0) *counter += delta;
}
