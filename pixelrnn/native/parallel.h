// work(item) for every item in [0, items), in contiguous chunks on up to `threads` threads. With
// OpenMP (the runtime torch's CPU build uses), on its threads: torch's idle workers spin-wait after
// each parallel region, so threads of our own would compete with them for the cores.
#pragma once

#include <algorithm>
#include <cstdint>
#include <thread>
#include <vector>

namespace pixelrnn {

template <typename Work>
void parallel(int64_t items, int64_t threads, Work work) {
    threads = std::max<int64_t>(1, std::min(threads, items));
#ifdef _OPENMP
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t item = 0; item < items; ++item) work(item);
#else
    auto chunk = [&](int64_t part) {
        for (int64_t item = part * items / threads; item < (part + 1) * items / threads; ++item) work(item);
    };
    std::vector<std::thread> pool;
    for (int64_t part = 1; part < threads; ++part) pool.emplace_back(chunk, part);
    chunk(0);
    for (std::thread& thread : pool) thread.join();
#endif
}

}  // namespace pixelrnn
