// Runs CUDA kernels on the CPU for tests: each CUDA thread is a std::thread, blocks run one after another.
// Included ahead of a kernel file by distgrad/kernels/emulator.py (g++ -std=c++20 -include emulator.h).
// What it models: threadIdx/blockIdx/blockDim/gridDim, __syncthreads (threads that have returned no
// longer count, as on the GPU), warp shuffles (every lane of the warp must take part), static and dynamic
// shared memory (dynamic memory starts as NaN bytes, so reading it before writing shows), atomicAdd on
// floats, and the math functions the kernels use. What it does not: timing, memory ordering beyond
// barriers, inline PTX (common.cuh has plain C++ for every asm block), warps narrower than 32 threads.
#pragma once
#define DG_EMULATOR 1

#include <atomic>
#include <barrier>
#include <math.h>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

struct dim3 {
    unsigned int x, y, z;
    dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};

namespace dg_emu {
struct Block {
    std::unique_ptr<std::barrier<>> sync;
    std::vector<std::unique_ptr<std::barrier<>>> warps;
    std::vector<std::uint64_t> exchange;  // 32 slots per warp, for shuffles
};
inline dim3 grid_dim, block_dim, block_idx;
inline thread_local dim3 thread_idx;
inline thread_local int linear_id;
inline Block* block;
inline std::vector<unsigned char> dynamic_shared;

template <class T, class F> T exchange(T v, F source) {
    static_assert(sizeof(T) <= 8, "shuffles move at most 8 bytes");
    int warp = linear_id / 32, lane = linear_id % 32;
    std::uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof(T));
    block->exchange[warp * 32 + lane] = bits;
    block->warps[warp]->arrive_and_wait();
    bits = block->exchange[warp * 32 + source(lane)];
    block->warps[warp]->arrive_and_wait();  // nobody overwrites a slot before every lane has read
    T out;
    std::memcpy(&out, &bits, sizeof(T));
    return out;
}

template <class... A, std::size_t... I>
void call(void (*kernel)(A...), void** args, std::index_sequence<I...>) {
    kernel(*static_cast<std::remove_reference_t<A>*>(args[I])...);
}

// Returns 0, or 1 + the index of the first argument whose size differs from the kernel's parameter.
template <class... A>
int launch(void (*kernel)(A...), const unsigned int* dims, std::size_t shared_bytes, void** args,
           const std::uint64_t* arg_sizes, int arg_count) {
    constexpr std::size_t sizes[] = {sizeof(A)..., 0};
    if (arg_count != (int)sizeof...(A)) return -1;
    for (int i = 0; i < arg_count; ++i)
        if (sizes[i] != arg_sizes[i]) return i + 1;
    grid_dim = dim3(dims[0], dims[1], dims[2]);
    block_dim = dim3(dims[3], dims[4], dims[5]);
    const unsigned int threads = block_dim.x * block_dim.y * block_dim.z;
    if (threads % 32 != 0) return -2;
    dynamic_shared.assign(shared_bytes, 0xff);
    for (unsigned int bz = 0; bz < grid_dim.z; ++bz)
        for (unsigned int by = 0; by < grid_dim.y; ++by)
            for (unsigned int bx = 0; bx < grid_dim.x; ++bx) {
                block_idx = dim3(bx, by, bz);
                Block b;
                b.sync = std::make_unique<std::barrier<>>(threads);
                for (unsigned int w = 0; w < threads / 32; ++w) b.warps.push_back(std::make_unique<std::barrier<>>(32));
                b.exchange.assign(threads, 0);
                block = &b;
                std::vector<std::thread> pool;
                for (unsigned int t = 0; t < threads; ++t)
                    pool.emplace_back([&, t] {
                        linear_id = (int)t;
                        thread_idx = dim3(t % block_dim.x, t / block_dim.x % block_dim.y, t / (block_dim.x * block_dim.y));
                        call(kernel, args, std::index_sequence_for<A...>{});
                        b.warps[t / 32]->arrive_and_drop();
                        b.sync->arrive_and_drop();
                    });
                for (auto& th : pool) th.join();
            }
    return 0;
}
}  // namespace dg_emu

#define threadIdx (dg_emu::thread_idx)
#define blockIdx (dg_emu::block_idx)
#define blockDim (dg_emu::block_dim)
#define gridDim (dg_emu::grid_dim)
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)
#define __align__(n) alignas(n)
#define DG_DYNAMIC_SHARED(T, name) T* name = reinterpret_cast<T*>(dg_emu::dynamic_shared.data())

inline void __syncthreads() { dg_emu::block->sync->arrive_and_wait(); }
inline void __syncwarp(unsigned int = 0xffffffffu) { dg_emu::block->warps[dg_emu::linear_id / 32]->arrive_and_wait(); }

template <class T> T __shfl_xor_sync(unsigned int, T v, int lane_mask, int = 32) {
    return dg_emu::exchange(v, [lane_mask](int lane) { return lane ^ lane_mask; });
}
template <class T> T __shfl_sync(unsigned int, T v, int source, int = 32) {
    return dg_emu::exchange(v, [source](int) { return source & 31; });
}
template <class T> T __shfl_down_sync(unsigned int, T v, unsigned int delta, int = 32) {
    return dg_emu::exchange(v, [delta](int lane) { return lane + (int)delta < 32 ? lane + (int)delta : lane; });
}

inline float atomicAdd(float* address, float v) { return std::atomic_ref<float>(*address).fetch_add(v); }

inline float __int_as_float(int v) { float f; std::memcpy(&f, &v, 4); return f; }
inline float __uint_as_float(unsigned int v) { float f; std::memcpy(&f, &v, 4); return f; }
inline int __float_as_int(float v) { int i; std::memcpy(&i, &v, 4); return i; }
inline unsigned int __float_as_uint(float v) { unsigned int i; std::memcpy(&i, &v, 4); return i; }
inline float rsqrtf(float v) { return 1.0f / std::sqrt(v); }
inline float __expf(float v) { return std::exp(v); }
inline float __logf(float v) { return std::log(v); }
inline float __fdividef(float a, float b) { return a / b; }
