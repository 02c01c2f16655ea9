// Flash attention (online softmax; the (L, S) probability matrix never reaches global memory).
//
// Arrays are contiguous: q and out (n, L, D), k and v (n, S, D), lse and delta (n, L) float32; n is
// batch * heads. Scores s_ij = q_i . k_j * scale; with ``causal`` key j is visible to query i when j <= i
// (top-left aligned, as PyTorch's is_causal). All arithmetic is float32, whatever T is.
//
//   flash_forward       out_i = sum_j p_ij v_j, p_ij = exp(s_ij - lse_i), lse_i = logsumexp_j s_ij
//   flash_backward_dq   dq_i = scale * sum_j ds_ij k_j
//   flash_backward_dkdv dk_j = scale * sum_i ds_ij q_i,  dv_j = sum_i p_ij dout_i
// with ds_ij = p_ij (dout_i . v_j - delta_i) and delta_i = dout_i . out_i (computed by the caller). The
// backward recomputes p from q, k and the saved lse instead of storing it; dq and dk/dv are separate
// kernels (each recomputes p) so that no two blocks add into one output: the results are repeatable.
//
// Tiles: 128 threads per block. Thread t owns row t / 2 of the block's 64-row tile and half t % 2 of
// the other tile's rows (when forming scores) and of the head dim (when accumulating outputs), so each
// thread keeps D / 2 accumulators in registers. Tiles are staged in float in shared memory, rows padded
// by one word where 16 rows are read at once (no bank conflicts); sizes per kernel are in
// distgrad/kernels/flash_attention.py (shared_floats), up to ~116 KB: Hopper gives a block 227 KB.
// The products are FMA on CUDA cores, not tensor cores (mma/wgmma would be the next step).
#include "common.cuh"

#define DG_FLASH_ROWS 64
#define DG_FLASH_THREADS 128

template <class T, int D>
__device__ __forceinline__ void dg_stage_rows(float* tile, int pitch, const T* src, int first, int count, int limit,
                                              float factor) {
    for (int idx = threadIdx.x; idx < count * D; idx += DG_FLASH_THREADS) {
        int r = idx / D, c = idx % D, row = first + r;
        tile[r * pitch + c] = row < limit ? dg_load(src, (dg_int64)row * D + c) * factor : 0.0f;
    }
}

template <int D>
__device__ __forceinline__ float dg_dot(const float* a, const float* b) {
    float acc = 0.0f;
#pragma unroll
    for (int c = 0; c < D; ++c) acc += a[c] * b[c];
    return acc;
}

// acc[c] += sum_j weights[j] * rows[j * pitch + c] for c < HALF: this thread's half of a weighted sum of
// COUNT rows of a tile (P V in the forward, dS K, P^T dO and dS^T Q in the backward).
template <int HALF, int COUNT>
__device__ __forceinline__ void dg_accumulate(float* acc, const float* weights, const float* rows, int pitch) {
    for (int j = 0; j < COUNT; ++j) {
        const float weight = weights[j];
        const float* row = rows + j * pitch;
#pragma unroll
        for (int c = 0; c < HALF; ++c) acc[c] += weight * row[c];
    }
}

template <class T, int D, int BC>
__global__ void __launch_bounds__(DG_FLASH_THREADS) flash_forward(const T* q, const T* k, const T* v, T* out,
                                                                  float* lse, int L, int S, float scale, int causal) {
    constexpr int BR = DG_FLASH_ROWS, HALF_C = BC / 2, HALF_D = D / 2, QP = D + 1, PP = BC + 1;
    DG_DYNAMIC_SHARED(float, smem);
    float* qs = smem;             // [BR][D + 1], q * scale
    float* ks = qs + BR * QP;     // [BC][D + 1]
    float* vs = ks + BC * QP;     // [BC][D]
    float* ps = vs + BC * D;      // [BR][BC + 1]
    const int n = blockIdx.y, row0 = blockIdx.x * BR, r = threadIdx.x >> 1, h = threadIdx.x & 1, qi = row0 + r;
    const T* qn = q + (dg_int64)n * L * D;
    const T* kn = k + (dg_int64)n * S * D;
    const T* vn = v + (dg_int64)n * S * D;
    dg_stage_rows<T, D>(qs, QP, qn, row0, BR, L, scale);
    float acc[HALF_D];
#pragma unroll
    for (int c = 0; c < HALF_D; ++c) acc[c] = 0.0f;
    float m = -INFINITY, l = 0.0f;
    const int kv_end = causal && row0 + BR < S ? row0 + BR : S;  // causal: no key past the tile's last row
    for (int kv0 = 0; kv0 < kv_end; kv0 += BC) {
        __syncthreads();  // the previous tile's ks, vs and ps are no longer read
        dg_stage_rows<T, D>(ks, QP, kn, kv0, BC, S, 1.0f);
        dg_stage_rows<T, D>(vs, D, vn, kv0, BC, S, 1.0f);
        __syncthreads();
        float scores[HALF_C];
        float tile_max = -INFINITY;
#pragma unroll
        for (int jj = 0; jj < HALF_C; ++jj) {
            int j = h * HALF_C + jj, key = kv0 + j;
            bool visible = key < S && (!causal || key <= qi);
            scores[jj] = visible ? dg_dot<D>(qs + r * QP, ks + j * QP) : -INFINITY;
            tile_max = fmaxf(tile_max, scores[jj]);
        }
        tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));  // the row's other half
        const float m_new = fmaxf(m, tile_max);
        const float alpha = m_new == -INFINITY ? 1.0f : expf(m - m_new);
        float tile_sum = 0.0f;
#pragma unroll
        for (int jj = 0; jj < HALF_C; ++jj) {
            float p = scores[jj] == -INFINITY ? 0.0f : expf(scores[jj] - m_new);
            ps[r * PP + h * HALF_C + jj] = p;
            tile_sum += p;
        }
        tile_sum += __shfl_xor_sync(0xffffffffu, tile_sum, 1);
        l = l * alpha + tile_sum;
        m = m_new;
        __syncthreads();  // the row's probabilities from both halves are in ps
#pragma unroll
        for (int c = 0; c < HALF_D; ++c) acc[c] *= alpha;
        dg_accumulate<HALF_D, BC>(acc, ps + r * PP, vs + h * HALF_D, D);
    }
    if (qi < L) {
        const float inv = l > 0.0f ? 1.0f / l : 0.0f;
        T* on = out + ((dg_int64)n * L + qi) * D + h * HALF_D;
#pragma unroll
        for (int c = 0; c < HALF_D; ++c) dg_store(on, c, acc[c] * inv);
        if (h == 0) lse[(dg_int64)n * L + qi] = l > 0.0f ? m + logf(l) : INFINITY;
    }
}

template <class T, int D, int BC>
__global__ void __launch_bounds__(DG_FLASH_THREADS) flash_backward_dq(const T* q, const T* k, const T* v,
                                                                      const T* dout, const float* lse,
                                                                      const float* delta, T* dq, int L, int S,
                                                                      float scale, int causal) {
    constexpr int BR = DG_FLASH_ROWS, HALF_C = BC / 2, HALF_D = D / 2, QP = D + 1, PP = BC + 1;
    DG_DYNAMIC_SHARED(float, smem);
    float* qs = smem;             // [BR][D + 1]
    float* dos = qs + BR * QP;    // [BR][D + 1]
    float* ks = dos + BR * QP;    // [BC][D + 1]
    float* vs = ks + BC * QP;     // [BC][D + 1]
    float* ds = vs + BC * QP;     // [BR][BC + 1]
    const int n = blockIdx.y, row0 = blockIdx.x * BR, r = threadIdx.x >> 1, h = threadIdx.x & 1, qi = row0 + r;
    const dg_int64 qbase = (dg_int64)n * L * D, kbase = (dg_int64)n * S * D;
    dg_stage_rows<T, D>(qs, QP, q + qbase, row0, BR, L, 1.0f);
    dg_stage_rows<T, D>(dos, QP, dout + qbase, row0, BR, L, 1.0f);
    const float row_lse = qi < L ? lse[(dg_int64)n * L + qi] : INFINITY;
    const float row_delta = qi < L ? delta[(dg_int64)n * L + qi] : 0.0f;
    float acc[HALF_D];
#pragma unroll
    for (int c = 0; c < HALF_D; ++c) acc[c] = 0.0f;
    const int kv_end = causal && row0 + BR < S ? row0 + BR : S;
    for (int kv0 = 0; kv0 < kv_end; kv0 += BC) {
        __syncthreads();
        dg_stage_rows<T, D>(ks, QP, k + kbase, kv0, BC, S, 1.0f);
        dg_stage_rows<T, D>(vs, QP, v + kbase, kv0, BC, S, 1.0f);
        __syncthreads();
#pragma unroll
        for (int jj = 0; jj < HALF_C; ++jj) {
            int j = h * HALF_C + jj, key = kv0 + j;
            bool visible = qi < L && key < S && (!causal || key <= qi);
            float p = visible ? expf(dg_dot<D>(qs + r * QP, ks + j * QP) * scale - row_lse) : 0.0f;
            ds[r * PP + j] = p * (dg_dot<D>(dos + r * QP, vs + j * QP) - row_delta);
        }
        __syncthreads();
        dg_accumulate<HALF_D, BC>(acc, ds + r * PP, ks + h * HALF_D, QP);
    }
    if (qi < L) {
        T* out = dq + qbase + (dg_int64)qi * D + h * HALF_D;
#pragma unroll
        for (int c = 0; c < HALF_D; ++c) dg_store(out, c, acc[c] * scale);
    }
}

// One block per 64 keys; thread t owns key row t / 2 and half t % 2 of each query tile (BQ rows).
template <class T, int D, int BQ>
__global__ void __launch_bounds__(DG_FLASH_THREADS) flash_backward_dkdv(const T* q, const T* k, const T* v,
                                                                        const T* dout, const float* lse,
                                                                        const float* delta, T* dk, T* dv, int L,
                                                                        int S, float scale, int causal) {
    constexpr int BK = DG_FLASH_ROWS, HALF_Q = BQ / 2, HALF_D = D / 2, QP = D + 1, PP = BQ + 1;
    DG_DYNAMIC_SHARED(float, smem);
    float* ks = smem;             // [BK][D + 1]
    float* vs = ks + BK * QP;     // [BK][D + 1]
    float* qs = vs + BK * QP;     // [BQ][D + 1]
    float* dos = qs + BQ * QP;    // [BQ][D + 1]
    float* pt = dos + BQ * QP;    // [BK][BQ + 1]: p transposed
    float* dst = pt + BK * PP;    // [BK][BQ + 1]: ds transposed
    float* lse_s = dst + BK * PP; // [BQ]
    float* delta_s = lse_s + BQ;  // [BQ]
    const int n = blockIdx.y, key0 = blockIdx.x * BK, c_row = threadIdx.x >> 1, h = threadIdx.x & 1;
    const int key = key0 + c_row;
    const dg_int64 qbase = (dg_int64)n * L * D, kbase = (dg_int64)n * S * D;
    dg_stage_rows<T, D>(ks, QP, k + kbase, key0, BK, S, 1.0f);
    dg_stage_rows<T, D>(vs, QP, v + kbase, key0, BK, S, 1.0f);
    float acc_k[HALF_D], acc_v[HALF_D];
#pragma unroll
    for (int c = 0; c < HALF_D; ++c) { acc_k[c] = 0.0f; acc_v[c] = 0.0f; }
    const int q_start = causal ? key0 / BQ * BQ : 0;  // causal: queries before the first key see none of them
    for (int i0 = q_start; i0 < L; i0 += BQ) {
        __syncthreads();
        dg_stage_rows<T, D>(qs, QP, q + qbase, i0, BQ, L, 1.0f);
        dg_stage_rows<T, D>(dos, QP, dout + qbase, i0, BQ, L, 1.0f);
        for (int i = threadIdx.x; i < BQ; i += DG_FLASH_THREADS) {
            bool inside = i0 + i < L;
            lse_s[i] = inside ? lse[(dg_int64)n * L + i0 + i] : INFINITY;
            delta_s[i] = inside ? delta[(dg_int64)n * L + i0 + i] : 0.0f;
        }
        __syncthreads();
#pragma unroll
        for (int ii = 0; ii < HALF_Q; ++ii) {
            int i = h * HALF_Q + ii, qi = i0 + i;
            bool visible = qi < L && key < S && (!causal || key <= qi);
            float p = visible ? expf(dg_dot<D>(qs + i * QP, ks + c_row * QP) * scale - lse_s[i]) : 0.0f;
            pt[c_row * PP + i] = p;
            dst[c_row * PP + i] = p * (dg_dot<D>(dos + i * QP, vs + c_row * QP) - delta_s[i]);
        }
        __syncthreads();
        dg_accumulate<HALF_D, BQ>(acc_v, pt + c_row * PP, dos + h * HALF_D, QP);
        dg_accumulate<HALF_D, BQ>(acc_k, dst + c_row * PP, qs + h * HALF_D, QP);
    }
    if (key < S) {
        const dg_int64 at = kbase + (dg_int64)key * D + h * HALF_D;
#pragma unroll
        for (int c = 0; c < HALF_D; ++c) { dg_store(dk, at + c, acc_k[c] * scale); dg_store(dv, at + c, acc_v[c]); }
    }
}
