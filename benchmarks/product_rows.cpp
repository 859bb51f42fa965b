// The native scans' small matrix product (pixelrnn/native/dense.h) on rows laid out as the scans
// lay them out, for benchmarks/product_rows.py: the rate of one product whose rows are far apart
// in memory against the same product on rows one after another.
#include <chrono>
#include <cstdint>
#include <vector>

#include "dense.h"

// GFLOP/s of out = base + x @ weight over `rows` rows, x (n_in per row), base and out (n_out per
// row) each with its own row stride (floats). Each product starts at another place of maps of
// `map_floats` floats (one per operand), as a scan's steps do, so that its rows come from memory
// rather than from the previous product's cache lines; products run for about `seconds`.
extern "C" double pixelrnn_product_rate(int64_t rows, int64_t n_in, int64_t n_out, int64_t x_stride, int64_t base_stride,
                                        int64_t out_stride, int64_t map_floats, double seconds) {
    using pixelrnn::View;
    std::vector<float> x(map_floats, 0.5f), base(map_floats, 0.25f), out(map_floats), weight(n_in * n_out, 0.01f);
    const int64_t reach = (rows - 1) * std::max({x_stride, base_stride, out_stride}) + std::max(n_in, n_out);
    const int64_t places = std::max<int64_t>(1, map_floats - reach);
    const pixelrnn::Dense op{n_in, n_out, n_out, 0, 0, false};
    const View<float> none{nullptr, 0, 0};
    int64_t products = 0;
    const auto start = std::chrono::steady_clock::now();
    double elapsed = 0;
    while (elapsed < seconds) {
        for (int repeat = 0; repeat < 64; ++repeat, ++products) {
            const int64_t offset = (products * 4099 * 16) % places;  // a stride prime to the map's size: every place in turn
            pixelrnn::dense<float, false>(op, rows, View<float>{out.data() + offset, out_stride, 1},
                                          View<float>{x.data() + offset, x_stride, 1}, View<float>{base.data() + offset, base_stride, 1},
                                          none, weight.data());
        }
        elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }
    return 2.0 * rows * n_in * n_out * products / elapsed / 1e9;
}
