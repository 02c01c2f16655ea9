// Runs CUDA kernels on the CPU, for tests. Included ahead of a kernel file by distgrad/kernels/emulator.py
// (g++ -std=c++20 -include emulator.h). Each CUDA thread of a block is a fiber (ucontext) on one OS
// thread, resumed in turn; a barrier yields until every thread that has not returned reaches it, so a
// launch is deterministic and a barrier costs a few context switches. Blocks run one after another.
// What it models: threadIdx/blockIdx/blockDim/gridDim, __syncthreads (threads that have returned no
// longer count, as on the GPU), warp shuffles (every lane of the warp must take part), static and dynamic
// shared memory (dynamic memory starts as NaN bytes, so reading it before writing shows), atomicAdd on
// floats, and the math functions the kernels use. A launch whose threads all wait at barriers that can
// never complete (a __syncthreads some threads skip) returns an error instead of hanging. What it does
// not model: timing, memory ordering beyond barriers, inline PTX (common.cuh has plain C++ for each asm
// block), warps narrower than 32 threads.
#pragma once
#define DG_EMULATOR 1

#include <math.h>
#include <ucontext.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

struct dim3 {
    unsigned int x, y, z;
    dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};

namespace dg_emu {
struct Barrier {
    int expected = 0, arrived = 0;
    unsigned long phase = 0;
};

struct Fiber {
    ucontext_t context;
    std::unique_ptr<char[]> stack;
    dim3 thread_idx;
    int linear_id = 0;
    bool done = false;
};

constexpr std::size_t STACK_BYTES = 256 * 1024;
inline ucontext_t scheduler;
inline Fiber* current;
inline dim3 grid_dim, block_dim, block_idx;
inline Barrier sync_barrier;
inline std::vector<Barrier> warp_barriers;
inline std::vector<std::uint64_t> exchange_slots;  // 32 per warp, for shuffles
inline std::vector<unsigned char> dynamic_shared;
inline unsigned long progress;  // grows whenever a thread arrives at a barrier or returns
inline void (*body)(void**);
inline void** body_args;

inline void yield() { swapcontext(&current->context, &scheduler); }

inline void complete_if_full(Barrier& b) {
    if (b.arrived > 0 && b.arrived == b.expected) { b.arrived = 0; ++b.phase; }
}

inline void wait(Barrier& b) {
    unsigned long phase = b.phase;
    ++b.arrived;
    ++progress;
    complete_if_full(b);
    while (b.phase == phase) yield();
}

inline void leave(Barrier& b) {  // a returned thread no longer counts
    --b.expected;
    complete_if_full(b);
}

template <class T, class F> T exchange(T v, F source) {
    static_assert(sizeof(T) <= 8, "shuffles move at most 8 bytes");
    int warp = current->linear_id / 32, lane = current->linear_id % 32;
    std::uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof(T));
    exchange_slots[warp * 32 + lane] = bits;
    wait(warp_barriers[warp]);
    bits = exchange_slots[warp * 32 + source(lane)];
    wait(warp_barriers[warp]);  // nobody overwrites a slot before every lane has read
    T out;
    std::memcpy(&out, &bits, sizeof(T));
    return out;
}

template <class... A, std::size_t... I>
void call(void (*kernel)(A...), void** args, std::index_sequence<I...>) {
    kernel(*static_cast<std::remove_reference_t<A>*>(args[I])...);
}

inline void trampoline() {
    body(body_args);
    current->done = true;
    ++progress;
}  // returns to uc_link: the scheduler

// Returns 0; 1 + the index of the first argument whose size differs from the kernel's parameter;
// -1 for a wrong argument count, -2 for blocks that are not whole warps, -3 for a deadlock.
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
    static void (*the_kernel)(A...);
    the_kernel = kernel;
    body = [](void** a) { call(the_kernel, a, std::index_sequence_for<A...>{}); };
    body_args = args;
    std::vector<Fiber> fibers(threads);
    for (unsigned int t = 0; t < threads; ++t) {
        fibers[t].stack.reset(new char[STACK_BYTES]);
        fibers[t].linear_id = (int)t;
        fibers[t].thread_idx = dim3(t % block_dim.x, t / block_dim.x % block_dim.y, t / (block_dim.x * block_dim.y));
    }
    exchange_slots.assign(threads, 0);
    const std::size_t count = (std::size_t)grid_dim.x * grid_dim.y * grid_dim.z;
    for (std::size_t i = 0; i < count; ++i) {
        block_idx = dim3(i % grid_dim.x, i / grid_dim.x % grid_dim.y, i / ((std::size_t)grid_dim.x * grid_dim.y));
        sync_barrier = Barrier{(int)threads};
        warp_barriers.assign(threads / 32, Barrier{32});
        for (auto& f : fibers) {
            f.done = false;
            getcontext(&f.context);
            f.context.uc_stack.ss_sp = f.stack.get();
            f.context.uc_stack.ss_size = STACK_BYTES;
            f.context.uc_link = &scheduler;
            makecontext(&f.context, trampoline, 0);
        }
        unsigned int remaining = threads;
        while (remaining > 0) {
            unsigned long before = progress;
            for (auto& f : fibers) {
                if (f.done) continue;
                current = &f;
                swapcontext(&scheduler, &f.context);
                if (f.done) {
                    --remaining;
                    leave(warp_barriers[f.linear_id / 32]);
                    leave(sync_barrier);
                }
            }
            if (remaining > 0 && progress == before) return -3;
        }
    }
    return 0;
}
}  // namespace dg_emu

#define threadIdx (dg_emu::current->thread_idx)
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

inline void __syncthreads() { dg_emu::wait(dg_emu::sync_barrier); }
inline void __syncwarp(unsigned int = 0xffffffffu) { dg_emu::wait(dg_emu::warp_barriers[dg_emu::current->linear_id / 32]); }

template <class T> T __shfl_xor_sync(unsigned int, T v, int lane_mask, int = 32) {
    return dg_emu::exchange(v, [lane_mask](int lane) { return lane ^ lane_mask; });
}
template <class T> T __shfl_sync(unsigned int, T v, int source, int = 32) {
    return dg_emu::exchange(v, [source](int) { return source & 31; });
}
template <class T> T __shfl_down_sync(unsigned int, T v, unsigned int delta, int = 32) {
    return dg_emu::exchange(v, [delta](int lane) { return lane + (int)delta < 32 ? lane + (int)delta : lane; });
}

inline float atomicAdd(float* address, float v) {  // one OS thread: a plain add is atomic
    float old = *address;
    *address = old + v;
    return old;
}

inline float __int_as_float(int v) { float f; std::memcpy(&f, &v, 4); return f; }
inline float __uint_as_float(unsigned int v) { float f; std::memcpy(&f, &v, 4); return f; }
inline int __float_as_int(float v) { int i; std::memcpy(&i, &v, 4); return i; }
inline unsigned int __float_as_uint(float v) { unsigned int i; std::memcpy(&i, &v, 4); return i; }
inline float rsqrtf(float v) { return 1.0f / std::sqrt(v); }
inline float __expf(float v) { return std::exp(v); }
inline float __logf(float v) { return std::log(v); }
inline float __fdividef(float a, float b) { return a / b; }
