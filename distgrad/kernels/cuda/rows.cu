// Kernels along the last dim of a (rows, cols) array, one block of whole warps per row:
//   softmax_forward<T, LOG>   y = softmax(x * scale) (LOG: log_softmax); with causal_length > 0 the rows are
//                             stacked (causal_length, cols) matrices and row i of each attends columns <= i only
//                             (masked entries give probability 0, log-probability -inf). In place allowed.
//   softmax_backward<T, LOG>  grad_x = y * (g - sum(g * y))      (LOG: g - exp(y) * sum(g))
//   layer_norm_forward<T, CENTER>   y = (x - mean) * rstd * w + b, mean and rstd saved (float32);
//                                   without CENTER mean is 0 (RMS normalisation)
//   layer_norm_backward<T, CENTER>  grad_x = rstd * (gw - mean(gw) - xhat * mean(gw * xhat)), gw = g * w
//   layer_norm_param_backward<T, CENTER>  per-chunk column sums of g * xhat and g (weight and bias grads)
//   cross_entropy_forward<T>  per row: lse = logsumexp(x), loss = lse - x[target] (0 where ignored)
//   cross_entropy_backward<T> grad_x = (exp(x - lse) - onehot(target)) * scale[row * scale_stride]
// Statistics are float32 whatever T is; each pass reads the row from global memory (L1/L2 keeps it).
#include "common.cuh"

template <class T, bool LOG>
__global__ void softmax_forward(const T* x, T* y, int rows, int cols, float scale, int causal_length) {
    __shared__ float scratch[64];
    int row = blockIdx.x;
    if (row >= rows) return;
    const T* in = x + (dg_int64)row * cols;
    T* out = y + (dg_int64)row * cols;
    int allowed = cols;
    if (causal_length > 0 && row % causal_length + 1 < cols) allowed = row % causal_length + 1;
    float m = -INFINITY, s = 0.0f;
    for (int j = threadIdx.x; j < allowed; j += blockDim.x) dg_online_add(m, s, dg_load(in, j) * scale);
    dg_block_merge_softmax(m, s, scratch);
    float log_total = m + logf(s);
    float inv_total = 1.0f / s;
    for (int j = threadIdx.x; j < cols; j += blockDim.x) {
        float v = j < allowed ? dg_load(in, j) * scale : -INFINITY;
        dg_store(out, j, LOG ? v - log_total : (j < allowed ? expf(v - m) * inv_total : 0.0f));
    }
}

template <class T, bool LOG>
__global__ void softmax_backward(const T* grad, const T* y, T* grad_x, int rows, int cols) {
    __shared__ float scratch[32];
    int row = blockIdx.x;
    if (row >= rows) return;
    dg_int64 base = (dg_int64)row * cols;
    float total = 0.0f;
    for (int j = threadIdx.x; j < cols; j += blockDim.x)
        total += LOG ? dg_load(grad, base + j) : dg_load(grad, base + j) * dg_load(y, base + j);
    total = dg_block_sum(total, scratch);
    for (int j = threadIdx.x; j < cols; j += blockDim.x) {
        float g = dg_load(grad, base + j), out = dg_load(y, base + j);
        dg_store(grad_x, base + j, LOG ? g - expf(out) * total : out * (g - total));
    }
}

template <class T, bool CENTER>
__global__ void layer_norm_forward(const T* x, const T* weight, const T* bias, T* y, float* mean_out, float* rstd_out,
                                   int rows, int cols, float eps) {
    __shared__ float scratch[32];
    int row = blockIdx.x;
    if (row >= rows) return;
    dg_int64 base = (dg_int64)row * cols;
    float mean = 0.0f;
    if (CENTER) {
        float total = 0.0f;
        for (int j = threadIdx.x; j < cols; j += blockDim.x) total += dg_load(x, base + j);
        mean = dg_block_sum(total, scratch) / cols;
    }
    float squares = 0.0f;  // a second pass over (x - mean): no cancellation, unlike E[x^2] - mean^2
    for (int j = threadIdx.x; j < cols; j += blockDim.x) {
        float d = dg_load(x, base + j) - mean;
        squares += d * d;
    }
    float rstd = rsqrtf(dg_block_sum(squares, scratch) / cols + eps);
    for (int j = threadIdx.x; j < cols; j += blockDim.x) {
        float v = (dg_load(x, base + j) - mean) * rstd;
        if (weight != nullptr) v *= dg_load(weight, j);
        if (bias != nullptr) v += dg_load(bias, j);
        dg_store(y, base + j, v);
    }
    if (threadIdx.x == 0) { mean_out[row] = mean; rstd_out[row] = rstd; }
}

template <class T, bool CENTER>
__global__ void layer_norm_backward(const T* grad, const T* x, const T* weight, const float* mean_in,
                                    const float* rstd_in, T* grad_x, int rows, int cols) {
    __shared__ float scratch[32];
    int row = blockIdx.x;
    if (row >= rows) return;
    dg_int64 base = (dg_int64)row * cols;
    float mean = mean_in[row], rstd = rstd_in[row];
    float sum_g = 0.0f, sum_gx = 0.0f;
    for (int j = threadIdx.x; j < cols; j += blockDim.x) {
        float g = dg_load(grad, base + j) * (weight != nullptr ? dg_load(weight, j) : 1.0f);
        sum_g += g;
        sum_gx += g * (dg_load(x, base + j) - mean) * rstd;
    }
    float mean_g = CENTER ? dg_block_sum(sum_g, scratch) / cols : 0.0f;
    float mean_gx = dg_block_sum(sum_gx, scratch) / cols;
    for (int j = threadIdx.x; j < cols; j += blockDim.x) {
        float g = dg_load(grad, base + j) * (weight != nullptr ? dg_load(weight, j) : 1.0f);
        float xhat = (dg_load(x, base + j) - mean) * rstd;
        dg_store(grad_x, base + j, rstd * (g - mean_g - xhat * mean_gx));
    }
}

// Blocks of (32, 8) threads: 32 columns, 8 rows at a time over a chunk of ``chunk_rows`` rows. Each block
// writes its chunk's partial sums (float32, one row of ``partial_w``/``partial_b`` per chunk); the caller
// sums the chunks. No atomics, so the result does not depend on the order blocks run in.
template <class T, bool CENTER>
__global__ void layer_norm_param_backward(const T* grad, const T* x, const float* mean_in, const float* rstd_in,
                                          float* partial_w, float* partial_b, int rows, int cols, int chunk_rows) {
    __shared__ float sums[2][8][33];
    int col = blockIdx.x * 32 + threadIdx.x, chunk = blockIdx.y;
    int first = chunk * chunk_rows, last = first + chunk_rows < rows ? first + chunk_rows : rows;
    float w = 0.0f, b = 0.0f;
    if (col < cols) {
        for (int row = first + threadIdx.y; row < last; row += 8) {
            dg_int64 i = (dg_int64)row * cols + col;
            float g = dg_load(grad, i);
            w += g * (dg_load(x, i) - (CENTER ? mean_in[row] : 0.0f)) * rstd_in[row];
            b += g;
        }
    }
    sums[0][threadIdx.y][threadIdx.x] = w;
    sums[1][threadIdx.y][threadIdx.x] = b;
    __syncthreads();
    if (threadIdx.y == 0 && col < cols) {
        for (int k = 1; k < 8; ++k) { w += sums[0][k][threadIdx.x]; b += sums[1][k][threadIdx.x]; }
        partial_w[(dg_int64)chunk * cols + col] = w;
        partial_b[(dg_int64)chunk * cols + col] = b;
    }
}

// A target outside [0, classes) that is not ignore_index gives a nan loss (the host checks the range
// before the launch, except in a captured CUDA graph, which cannot read the targets).
template <class T>
__global__ void cross_entropy_forward(const T* x, const dg_int64* target, float* loss, float* lse, int rows,
                                      int classes, dg_int64 ignore_index) {
    __shared__ float scratch[64];
    int row = blockIdx.x;
    if (row >= rows) return;
    dg_int64 base = (dg_int64)row * classes;
    float m = -INFINITY, s = 0.0f;
    for (int j = threadIdx.x; j < classes; j += blockDim.x) dg_online_add(m, s, dg_load(x, base + j));
    dg_block_merge_softmax(m, s, scratch);
    if (threadIdx.x == 0) {
        float row_lse = m + logf(s);
        dg_int64 t = target[row];
        lse[row] = row_lse;
        if (t == ignore_index) loss[row] = 0.0f;
        else if (t < 0 || t >= classes) loss[row] = __int_as_float(0x7fc00000);
        else loss[row] = row_lse - dg_load(x, base + t);
    }
}

template <class T>
__global__ void cross_entropy_backward(const T* x, const dg_int64* target, const float* lse, const float* scale,
                                       int scale_stride, T* grad_x, int rows, int classes, dg_int64 ignore_index) {
    int row = blockIdx.x;
    if (row >= rows) return;
    dg_int64 base = (dg_int64)row * classes, t = target[row];
    float factor = t == ignore_index ? 0.0f : scale[(dg_int64)row * scale_stride], row_lse = lse[row];
    for (int j = threadIdx.x; j < classes; j += blockDim.x) {
        float p = expf(dg_load(x, base + j) - row_lse);
        dg_store(grad_x, base + j, (p - (j == t ? 1.0f : 0.0f)) * factor);
    }
}
