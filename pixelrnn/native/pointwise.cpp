// The masked 1x1 convolutions (section 3.4's residual blocks, skips and output stack) as products
// over the channels of every position: out = base + x @ weight, and the weight's gradient.
//
// The maps are tall and narrow (every position of every image as a row, 16 to 128 channels), where
// a BLAS product spends much of its time packing its operands for a reuse that so few columns do
// not give. dense.h multiplies the rows where they lie, a block of ROWS_PER_BLOCK rows at a time:
// the block's rows of x stay in cache while every tile of outputs passes over them.
//
// The weight's gradient is a sum over the rows. It is summed block by block (each block's rows in
// order, ROWS_PER_SUM rows to a partial sum), and the partial sums are added in order after: the
// same result on any number of threads, since the blocks never depend on the thread count.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "dense.h"
#include "parallel.h"

using pixelrnn::at_address;

namespace {

using pixelrnn::Dense;
using pixelrnn::View;
using pixelrnn::dense;
using pixelrnn::parallel;

constexpr int64_t ROWS_PER_BLOCK = 256;  // x: 256 rows of up to 128 floats, in L2 while the output tiles pass
constexpr int64_t ROWS_PER_SUM = 4096;   // rows summed into one partial gradient before the partials are added

// out (rows, n_out) = [bias | out | 0] + x (rows, n_in) @ weight (n_in, n_out; rows weight_stride apart, readable up to
// the next multiple of 16 columns). Rows are independent: any split over threads gives the same values.
template <typename T>
void linear(const T* x, int64_t rows, int64_t n_in, const T* weight, int64_t weight_stride, int64_t n_out, const T* bias,
            bool accumulate, T* out, int64_t threads) {
    const Dense op{n_in, n_out, weight_stride, 0, 0, false, true};
    const View<T> none{nullptr, 0, 0};
    parallel((rows + ROWS_PER_BLOCK - 1) / ROWS_PER_BLOCK, threads, [&](int64_t block) {
        const int64_t first = block * ROWS_PER_BLOCK, count = std::min(ROWS_PER_BLOCK, rows - first);
        const View<T> o{out + first * n_out, n_out, 1};
        const View<T> base = accumulate ? o : bias ? View<T>{const_cast<T*>(bias), 0, 1} : none;  // the bias: every row reads row 0
        dense<T, false>(op, count, o, View<T>{const_cast<T*>(x) + first * n_in, n_in, 1}, base, none, weight);
    });
}

// grad_weight (n_out, n_in) = grad^T @ x and, where grad_bias is set, grad_bias (n_out) = the sum of grad's rows.
template <typename T>
void linear_weight_grad(const T* x, const T* grad, int64_t rows, int64_t n_in, int64_t n_out, T* grad_weight, T* grad_bias,
                        int64_t threads) {
    const int64_t sums = (rows + ROWS_PER_SUM - 1) / ROWS_PER_SUM, size = n_out * n_in;
    std::vector<T> partial(sums * (size + n_out), T(0));  // per partial sum: (n_out, n_in), then the bias' n_out
    const View<T> none{nullptr, 0, 0};
    parallel(sums, threads, [&](int64_t sum) {
        T* weight_sum = partial.data() + sum * (size + n_out);
        T* bias_sum = weight_sum + size;
        const View<T> out{weight_sum, n_in, 1};
        for (int64_t first = sum * ROWS_PER_SUM; first < std::min(rows, (sum + 1) * ROWS_PER_SUM); first += ROWS_PER_BLOCK) {
            const int64_t count = std::min({ROWS_PER_BLOCK, rows - first, (sum + 1) * ROWS_PER_SUM - first});
            // Output row c (a channel of grad) over units k (channels of x), summed over the block's rows r:
            // grad^T's row c is grad[r, c] along r, and the "weight" rows are x's rows.
            const Dense outer{count, n_in, n_in, 0, 0, false};
            dense<T, false>(outer, n_out, out, View<T>{const_cast<T*>(grad) + first * n_out, 1, n_out}, out, none,
                            x + first * n_in);
            if (grad_bias)
                for (int64_t r = first; r < first + count; ++r)
#pragma GCC ivdep
                    for (int64_t c = 0; c < n_out; ++c) bias_sum[c] += grad[r * n_out + c];
        }
    });
    if (!sums) {  // no rows: nothing to sum
        std::fill(grad_weight, grad_weight + size, T(0));
        if (grad_bias) std::fill(grad_bias, grad_bias + n_out, T(0));
        return;
    }
    // The partial sums in order, the first one copied: the same sums on any number of threads.
    std::copy(partial.begin(), partial.begin() + size, grad_weight);
    if (grad_bias) std::copy(partial.begin() + size, partial.begin() + size + n_out, grad_bias);
    for (int64_t sum = 1; sum < sums; ++sum) {
        const T* weight_sum = partial.data() + sum * (size + n_out);
        for (int64_t k = 0; k < size; ++k) grad_weight[k] += weight_sum[k];
        if (grad_bias)
            for (int64_t c = 0; c < n_out; ++c) grad_bias[c] += weight_sum[size + c];
    }
}

}  // namespace

#define PIXELRNN_POINTWISE(T, SUFFIX)                                                                                            \
    /* bias: 0 for none; accumulate: add to out's values instead of the bias. */                                                 \
    extern "C" int64_t pixelrnn_linear_##SUFFIX(int64_t x, int64_t rows, int64_t n_in, int64_t weight, int64_t weight_stride,    \
                                                int64_t n_out, int64_t bias, int64_t accumulate, int64_t out, int64_t threads) { \
        linear<T>(at_address<T>(x), rows, n_in, at_address<T>(weight), weight_stride, n_out, at_address<T>(bias), accumulate != 0, \
                  at_address<T>(out), threads);                                                                                  \
        return 0;                                                                                                                \
    }                                                                                                                            \
    /* grad_bias: 0 where the bias' gradient is not wanted. */                                                                   \
    extern "C" int64_t pixelrnn_linear_weight_grad_##SUFFIX(int64_t x, int64_t grad, int64_t rows, int64_t n_in, int64_t n_out,  \
                                                            int64_t grad_weight, int64_t grad_bias, int64_t threads) {           \
        linear_weight_grad<T>(at_address<T>(x), at_address<T>(grad), rows, n_in, n_out, at_address<T>(grad_weight),             \
                              at_address<T>(grad_bias), threads);                                                                \
        return 0;                                                                                                                \
    }

PIXELRNN_POINTWISE(float, f32)
PIXELRNN_POINTWISE(double, f64)
