// The recurrent scans of the Row LSTM (section 3.1) and the Diagonal BiLSTM (section 3.2, Figure
// 3), forward and backward through time, each a whole scan in one call.
//
// The PyTorch scans (pixelrnn/layers/scan.py) issue about fifteen tensor operations per step,
// forward and backward; here a step is one small matrix product per source of the recurrent
// state (dense.h) and one LSTM update per position (lstm.h). Images (and directions) never
// interact, so each (direction, image) is scanned whole by one thread (the Diagonal BiLSTM: each
// direction and group of images, a group's diagonals being the rows of one product): the result
// does not depend on the number of threads. The weight's gradient is accumulated per item while
// the backward pass has each step's states at hand; the caller sums it over the items.
//
// Layouts (all contiguous, D directions, B images, H x W, h units, 4h gates [o | f | i | g]):
//   Diagonal BiLSTM: gates (D, B, H, W, 4h) (or the layer's layout, GateLayout); the step t computes
//   the diagonal i + j = t. The scan's own buffers are diagonal-major (DiagonalMajor): activations
//   and tanh(cell) (D, B, H * W, 4h or h), the states padded with a row -1 and a column -1 that hold
//   the initial state, (D, B, (H + 1) * (W + 1), h). A diagonal's positions are then consecutive
//   rows of a step's products, and the states above and to the left of position p of diagonal t
//   are slots p and p + 1 of the padded diagonal before it: one input row of 2h.
//   Row LSTM: gates (B, H, W, 4h); states (B, H, W, h); the recurrent input of position (i, j) is
//   the row above at columns j - k//2 .. j + k//2 (zero outside), weight (k * h, 4h) tap-major.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "dense.h"
#include "lstm.h"
#include "parallel.h"

using pixelrnn::at_address;

namespace {

using pixelrnn::Dense;
using pixelrnn::View;
using pixelrnn::dense;
using pixelrnn::lstm_backward;
using pixelrnn::lstm_forward;
using pixelrnn::parallel;

// Ask for the cache lines of `count` elements from `row` on (the next step's scattered reads), into L2.
template <typename T>
inline void prefetch_row(const T* row, int64_t count) {
    const char* bytes = reinterpret_cast<const char*>(row);
    for (int64_t offset = 0; offset < count * int64_t(sizeof(T)); offset += 64) __builtin_prefetch(bytes + offset, 0, 2);
}

struct Diagonal {  // the positions of step t: rows lo .. lo + n - 1, column t - row
    int64_t lo, n;
    Diagonal(int64_t t, int64_t height, int64_t width) : lo(std::max<int64_t>(0, t - width + 1)), n(std::min(height - 1, t) - lo + 1) {}
};

// The diagonal-major order of a rows x columns map: diagonal s = r + c after diagonal s - 1, each by
// row; the slot of (r, c) is the diagonal's start plus r - lo. Rows far apart in the usual order
// (a diagonal's positions are W - 1 positions apart) are neighbours here, which a product's rows
// need to run at the rate of contiguous ones (benchmarks/product_rows.py).
struct DiagonalMajor {
    int64_t rows, columns;
    std::vector<int64_t> starts;
    DiagonalMajor(int64_t rows, int64_t columns) : rows(rows), columns(columns), starts(rows + columns - 1) {
        for (int64_t t = 0, slot = 0; t < rows + columns - 1; slot += Diagonal(t, rows, columns).n, ++t) starts[t] = slot;
    }
    int64_t at(int64_t r, int64_t c) const { return starts[r + c] + r - Diagonal(r + c, rows, columns).lo; }
};

// Where the Diagonal BiLSTM's input gates (and their gradients) live: element (d, b, r, c) at
// image * b + row * r + column * c' + direction * d, with c' = W - 1 - c for the second direction
// where mirror is set (the layer's own layout: the conv's channels-last output, the right-to-left
// direction read mirrored), c' = c otherwise (the reference layout (D, B, H, W, 4h)).
struct GateLayout {
    int64_t image, row, column, direction, mirror;
    int64_t at(int64_t d, int64_t b, int64_t r, int64_t c, int64_t width) const {
        return b * image + r * row + ((mirror && d) ? width - 1 - c : c) * column + d * direction;
    }
    int64_t step(int64_t d) const { return (mirror && d) ? row + column : row - column; }  // one row down, one column left
};

// out (B, H, W, h) = left-to-right state at (r, c) + right-to-left state at (r - 1, c) (mirrored
// columns), the layer's output; and its adjoint, which fills the padded gradient buffers.
template <typename T, bool ADJOINT>
void combine(T* hidden, T* out, int64_t batch, int64_t height, int64_t width, int64_t h, int64_t threads) {
    const int64_t padded = (height + 1) * (width + 1);
    const DiagonalMajor states(height + 1, width + 1);  // (r, c) at (r + 1, c + 1)
    parallel(batch, threads, [&](int64_t b) {
        T* forward = hidden + b * padded * h;
        T* reverse = hidden + (batch + b) * padded * h;
        if (ADJOINT) {
            std::fill(forward, forward + padded * h, T(0));
            std::fill(reverse, reverse + padded * h, T(0));
        }
        for (int64_t r = 0; r < height; ++r)
            for (int64_t c = 0; c < width; ++c) {
                T* o = out + ((b * height + r) * width + c) * h;
                T* f = forward + states.at(r + 1, c + 1) * h;
                T* g = reverse + states.at(r, width - c) * h;  // (r - 1, W - 1 - c)
                for (int64_t u = 0; u < h; ++u) {
                    if (ADJOINT) {
                        f[u] = o[u];
                        if (r) g[u] = o[u];
                    } else {
                        o[u] = f[u] + (r ? g[u] : T(0));
                    }
                }
            }
    });
}

// The scans of the Diagonal BiLSTM take the images `group` at a time (a number fixed by the caller,
// never by the thread count, so that the results do not depend on it): a step's products cover
// the diagonal's positions in every image of the group, as the rows of one product (View's
// blocks), instead of one small product per image. Item (direction, g) holds the images
// g * group .. g * group + group - 1 of that direction.
struct Group {
    int64_t direction, first, images;
    Group(int64_t item, int64_t groups, int64_t group, int64_t batch)
        : direction(item / groups), first(item % groups * group), images(std::min(group, batch - item % groups * group)) {}
};

template <typename T>
void diagonal_forward(const T* gates_in, GateLayout layout, const T* weight_t, const T* initial_hidden, const T* initial_cell,
                      T* hidden, T* cell, T* activations, T* tanh_cells, int64_t directions, int64_t batch, int64_t height, int64_t width, int64_t h, int64_t group, int64_t threads) {
    const int64_t four_h = 4 * h, map = height * width, padded = (height + 1) * (width + 1), groups = (batch + group - 1) / group;
    const DiagonalMajor real_map(height, width), padded_map(height + 1, width + 1);  // (r, c) at (r + 1, c + 1) in the second
    parallel(directions * groups, threads, [&](int64_t item) {
        const Group g(item, groups, group, batch);
        const int64_t start = g.direction * batch + g.first;  // (direction, image) of the group's first image
        const T* weight = weight_t + g.direction * 2 * h * four_h;  // (2h, 4h) over [state above ; state to the left]
        T* act = activations + start * map * four_h;
        T* tanh_cell = tanh_cells + start * map * h;
        T* states = hidden + start * padded * h;
        T* cells = cell + start * padded * h;
        // The padding holds the initial state: row -1 for the states above, column -1 for the states (and cells) to the left.
        const T* first_hidden = initial_hidden + g.direction * h;
        const T* first_cell = initial_cell + g.direction * h;
        for (int64_t i = 0; i < g.images; ++i) {
            for (int64_t c = 0; c <= width; ++c) std::copy(first_hidden, first_hidden + h, states + (i * padded + padded_map.at(0, c)) * h);
            for (int64_t r = 1; r <= height; ++r) {
                std::copy(first_hidden, first_hidden + h, states + (i * padded + padded_map.at(r, 0)) * h);
                std::copy(first_cell, first_cell + h, cells + (i * padded + padded_map.at(r, 0)) * h);
            }
        }
        // One product over [state above ; state to the left]: slots p and p + 1 of the padded diagonal before.
        const Dense step_product{2 * h, four_h, four_h, 0, 0, false};
        const View<T> none{nullptr, 0, 0};
        for (int64_t t = 0; t < height + width - 1; ++t) {
            const Diagonal d(t, height, width);
            const int64_t r0 = d.lo, c0 = t - d.lo;
            if (t + 1 < height + width - 1) {  // the next diagonal's gates, scattered over the group's images, on their way to cache
                const Diagonal next(t + 1, height, width);
                for (int64_t i = 0; i < g.images; ++i)
                    for (int64_t p = 0; p < next.n; ++p)
                        prefetch_row(gates_in + layout.at(g.direction, g.first + i, next.lo + p, t + 1 - next.lo - p, width), four_h);
            }
            // Rows of the product: position p of the diagonal in image i of the group is row i * n + p.
            // The padded diagonal before (its first slot: above (r0, c0)), and this diagonal's first slot.
            const int64_t before = padded_map.starts[t + 1], first = real_map.starts[t];
            const View<T> out{act + first * four_h, four_h, 1, d.n, map * four_h};
            const View<T> gates{const_cast<T*>(gates_in) + layout.at(g.direction, g.first, r0, c0, width), layout.step(g.direction), 1,
                                d.n, layout.image};
            const View<T> above{states + before * h, h, 1, d.n, padded * h};
            dense<T, false>(step_product, g.images * d.n, out, above, gates, none, weight);
            for (int64_t i = 0; i < g.images; ++i)
                for (int64_t p = 0; p < d.n; ++p) {
                    const int64_t r = r0 + p, c = c0 - p, slot = padded_map.at(r + 1, c + 1);
                    T* a = act + i * map * four_h + (first + p) * four_h;
                    const T* previous = cells + i * padded * h + (before + p + 1) * h;  // (r, c - 1)
                    T* cell_out = cells + i * padded * h + slot * h;
                    T* hidden_out = states + i * padded * h + slot * h;
                    lstm_forward<T>(h, a, a, tanh_cell + i * map * h + (first + p) * h, [&](int64_t u) { return previous[u]; },
                                    [&](int64_t u, T value, T state) {
                                        cell_out[u] = value;
                                        hidden_out[u] = state;
                                    });
                }
        }
    });
}

// The gradient of the weight is accumulated per (direction, group of images), transposed:
// grad_weight_t (D * groups, 2h, 4h), zero on entry, summed over the groups by the caller.
template <typename T>
void diagonal_backward(const T* weight, const T* activations, const T* cell, const T* tanh_cells, const T* hidden, T* grad_hidden,
                       T* grad_cell, T* grad_gates, GateLayout layout, T* grad_weight_t, int64_t directions, int64_t batch,
                       int64_t height, int64_t width, int64_t h, int64_t group, int64_t threads) {
    const int64_t four_h = 4 * h, map = height * width, padded = (height + 1) * (width + 1), groups = (batch + group - 1) / group;
    const DiagonalMajor real_map(height, width), padded_map(height + 1, width + 1);
    parallel(directions * groups, threads, [&](int64_t item) {
        const Group g(item, groups, group, batch);
        const int64_t start = g.direction * batch + g.first;
        const T* w = weight + g.direction * four_h * 2 * h;  // (4h, 2h): gradient of [state above ; state to the left]
        const T* act = activations + start * map * four_h;
        const T* tanh_cell = tanh_cells + start * map * h;
        const T* cells = cell + start * padded * h;
        const T* states = hidden + start * padded * h;
        T* partial = grad_weight_t + item * 2 * h * four_h;
        T* grad_states = grad_hidden + start * padded * h;
        T* grad_cells = grad_cell + start * padded * h;
        const int64_t grad_step = layout.step(g.direction);
        const View<T> none{nullptr, 0, 0};
        for (int64_t t = height + width - 2; t >= 0; --t) {
            const Diagonal d(t, height, width);
            const int64_t r0 = d.lo, c0 = t - d.lo, before = padded_map.starts[t + 1], first = real_map.starts[t];
            for (int64_t i = 0; i < g.images; ++i)
                for (int64_t p = 0; p < d.n; ++p) {
                    const int64_t r = r0 + p, c = c0 - p, slot = padded_map.at(r + 1, c + 1);
                    const T* previous = cells + i * padded * h + (before + p + 1) * h;
                    T* carried = grad_cells + i * padded * h + (before + p + 1) * h;  // the left neighbour's cell, through the forget gate
                    lstm_backward<T>(h, act + i * map * four_h + (first + p) * four_h, tanh_cell + i * map * h + (first + p) * h,
                                     grad_states + i * padded * h + slot * h, grad_cells + i * padded * h + slot * h,
                                     [&](int64_t u) { return previous[u]; }, grad_gates + layout.at(g.direction, g.first + i, r, c, width),
                                     [&](int64_t u, T value) { carried[u] += value; });
                }
            // Rows as in the forward scan: position p of image i is row i * n + p.
            T* local = grad_gates + layout.at(g.direction, g.first, r0, c0, width);
            const View<T> grad_local{local, grad_step, 1, d.n, layout.image};
            const Dense to_state{four_h, h, 2 * h, 0, 0, false};
            for (int64_t source = 0; source < 2; ++source) {  // the state above (slot p), then the state to the left (slot p + 1)
                const View<T> out{grad_states + (before + source) * h, h, 1, d.n, padded * h};
                dense<T, false>(to_state, g.images * d.n, out, grad_local, out, none, w + source * h);
            }
            // grad_weight_t += [states above ; states to the left]^T @ local, summed over the positions
            // of the diagonal in every image of the group: image i's positions are segment i of the sum.
            const Dense outer{g.images * d.n, four_h, grad_step, d.n, padded * h, false, false, layout.image};
            for (int64_t source = 0; source < 2; ++source) {
                const T* read = states + (before + source) * h;
                const View<T> out{partial + source * h * four_h, four_h, 1};
                dense<T, false>(outer, h, out, View<T>{const_cast<T*>(read), 1, h}, out, none, local);
            }
        }
    });
}

template <typename T>
void row_forward(const T* gates_in, const T* weight_t, const T* initial_hidden, const T* initial_cell, T* hidden, T* cell,
                 T* activations, T* tanh_cells, int64_t batch, int64_t height, int64_t width, int64_t h, int64_t kernel,
                 int64_t threads) {
    const int64_t four_h = 4 * h, reach = kernel / 2;
    parallel(batch, threads, [&](int64_t b) {
        std::vector<T> above((width + 2 * reach) * h, T(0));  // the row above, zero padded
        for (int64_t c = 0; c < width; ++c) std::copy(initial_hidden, initial_hidden + h, above.begin() + (reach + c) * h);
        for (int64_t t = 0; t < height; ++t) {
            const int64_t row = (b * height + t) * width;
            T* act = activations + row * four_h;
            dense<T>(width, kernel * h, four_h, above.data(), h, weight_t, four_h, act, four_h, gates_in + row * four_h);
            for (int64_t c = 0; c < width; ++c) {
                const T* previous = t ? cell + (row - width + c) * h : initial_cell;
                T* cell_out = cell + (row + c) * h;
                T* hidden_out = hidden + (row + c) * h;
                lstm_forward<T>(h, act + c * four_h, act + c * four_h, tanh_cells + (row + c) * h, [&](int64_t u) { return previous[u]; },
                                [&](int64_t u, T value, T state) {
                                    cell_out[u] = value;
                                    hidden_out[u] = state;
                                });
            }
            std::copy(hidden + row * h, hidden + (row + width) * h, above.begin() + reach * h);
        }
    });
}

// grad_initial_hidden / grad_initial_cell (B, W, h): what reached the initial state at each column;
// grad_weight_t (B, k*h, 4h): the weight's gradient per image, transposed (zero on entry).
template <typename T>
void row_backward(const T* weight, const T* initial_hidden, const T* initial_cell, const T* hidden, const T* cell,
                  const T* activations, const T* tanh_cells, const T* grad_hidden, T* grad_gates, T* grad_initial_hidden,
                  T* grad_initial_cell, T* grad_weight_t, int64_t batch, int64_t height, int64_t width, int64_t h, int64_t kernel,
                  int64_t threads) {
    const int64_t four_h = 4 * h, reach = kernel / 2;
    parallel(batch, threads, [&](int64_t b) {
        std::vector<T> carried_hidden((width + 2 * reach) * h, T(0));  // to the row above, zero padded
        std::vector<T> carried_cell(width * h, T(0));
        std::vector<T> grad_row(width * h);
        std::vector<T> above((width + 2 * reach) * h, T(0));  // what row t read: row t-1, zero padded
        const Dense outer{width, four_h, four_h, 0, 0, false};
        const View<T> partial{grad_weight_t + b * kernel * h * four_h, four_h, 1}, none{nullptr, 0, 0};
        for (int64_t t = height - 1; t >= 0; --t) {
            const int64_t row = (b * height + t) * width;
            for (int64_t k = 0; k < width * h; ++k) grad_row[k] = grad_hidden[row * h + k] + carried_hidden[reach * h + k];
            std::fill(carried_hidden.begin(), carried_hidden.end(), T(0));
            for (int64_t c = 0; c < width; ++c) {
                const T* previous = t ? cell + (row - width + c) * h : initial_cell;
                T* carried = carried_cell.data() + c * h;
                lstm_backward<T>(h, activations + (row + c) * four_h, tanh_cells + (row + c) * h, grad_row.data() + c * h, carried,
                                 [&](int64_t u) { return previous[u]; }, grad_gates + (row + c) * four_h,
                                 [&](int64_t u, T value) { carried[u] = value; });
            }
            // Tap s of column c read the row above at column c + s - k//2, padded index c + s.
            for (int64_t s = 0; s < kernel; ++s) {
                T* out = carried_hidden.data() + s * h;
                dense<T>(width, four_h, h, grad_gates + row * four_h, four_h, weight + s * h, kernel * h, out, h, out);
            }
            for (int64_t c = 0; c < width; ++c) {
                const T* state = t ? hidden + (row - width + c) * h : initial_hidden;
                std::copy(state, state + h, above.begin() + (reach + c) * h);
            }
            // grad_weight_t += taps^T @ grad_gates over the row: tap k' of column c is above[c * h + k'].
            dense<T, false>(outer, kernel * h, partial, View<T>{above.data(), 1, h}, partial, none, grad_gates + row * four_h);
        }
        std::copy(carried_hidden.begin() + reach * h, carried_hidden.begin() + (reach + width) * h, grad_initial_hidden + b * width * h);
        std::copy(carried_cell.begin(), carried_cell.end(), grad_initial_cell + b * width * h);
    });
}

}  // namespace

#define PIXELRNN_SCANS(T, SUFFIX)                                                                                                \
    /* out: 0, or (B, H, W, h) for the layer's combined output (D = 2). */                                                       \
    extern "C" int64_t pixelrnn_diagonal_forward_##SUFFIX(int64_t gates, int64_t image, int64_t row, int64_t column,             \
                                                          int64_t direction, int64_t mirror, int64_t weight_t,                   \
                                                          int64_t initial_hidden, int64_t initial_cell, int64_t hidden,          \
                                                          int64_t cell, int64_t activations, int64_t tanh_cells,                 \
                                                          int64_t directions, int64_t batch, int64_t height, int64_t width,      \
                                                          int64_t h, int64_t group, int64_t threads, int64_t out) {              \
        diagonal_forward<T>(at_address<T>(gates), GateLayout{image, row, column, direction, mirror}, at_address<T>(weight_t),      \
                            at_address<T>(initial_hidden), at_address<T>(initial_cell), at_address<T>(hidden),                   \
                            at_address<T>(cell), at_address<T>(activations), at_address<T>(tanh_cells), directions, batch, height, width, h, group, threads); \
        if (out) combine<T, false>(at_address<T>(hidden), at_address<T>(out), batch, height, width, h, threads);                 \
        return 0;                                                                                                                \
    }                                                                                                                            \
    /* grad_out: 0 (grad_hidden filled by the caller), or (B, H, W, h), the gradient of the combined output. */                  \
    extern "C" int64_t pixelrnn_diagonal_backward_##SUFFIX(int64_t weight, int64_t activations, int64_t cell, int64_t tanh_cells, \
                                                           int64_t hidden, int64_t grad_hidden, int64_t grad_cell,               \
                                                           int64_t grad_gates, int64_t image, int64_t row, int64_t column,       \
                                                           int64_t direction, int64_t mirror, int64_t grad_weight_t,             \
                                                           int64_t directions, int64_t batch, int64_t height, int64_t width,     \
                                                           int64_t h, int64_t group, int64_t threads, int64_t grad_out) {        \
        if (grad_out) combine<T, true>(at_address<T>(grad_hidden), at_address<T>(grad_out), batch, height, width, h, threads);   \
        diagonal_backward<T>(at_address<T>(weight), at_address<T>(activations), at_address<T>(cell), at_address<T>(tanh_cells), at_address<T>(hidden), at_address<T>(grad_hidden), \
                             at_address<T>(grad_cell), at_address<T>(grad_gates), GateLayout{image, row, column, direction, mirror}, \
                             at_address<T>(grad_weight_t), directions, batch, height, width, h, group, threads);                 \
        return 0;                                                                                                                \
    }                                                                                                                            \
    extern "C" int64_t pixelrnn_row_forward_##SUFFIX(int64_t gates, int64_t weight_t, int64_t initial_hidden,                    \
                                                     int64_t initial_cell, int64_t hidden, int64_t cell, int64_t activations,    \
                                                     int64_t tanh_cells, int64_t batch, int64_t height, int64_t width,           \
                                                     int64_t h, int64_t kernel, int64_t threads) {                               \
        row_forward<T>(at_address<T>(gates), at_address<T>(weight_t), at_address<T>(initial_hidden), at_address<T>(initial_cell), at_address<T>(hidden), at_address<T>(cell), \
                       at_address<T>(activations), at_address<T>(tanh_cells), batch, height, width, h, kernel, threads);         \
        return 0;                                                                                                                \
    }                                                                                                                            \
    extern "C" int64_t pixelrnn_row_backward_##SUFFIX(int64_t weight, int64_t initial_hidden, int64_t initial_cell,              \
                                                      int64_t hidden, int64_t cell, int64_t activations, int64_t tanh_cells,     \
                                                      int64_t grad_hidden, int64_t grad_gates, int64_t grad_initial_hidden,      \
                                                      int64_t grad_initial_cell, int64_t grad_weight_t, int64_t batch,           \
                                                      int64_t height, int64_t width, int64_t h, int64_t kernel,                  \
                                                      int64_t threads) {                                                         \
        row_backward<T>(at_address<T>(weight), at_address<T>(initial_hidden), at_address<T>(initial_cell), at_address<T>(hidden), at_address<T>(cell), at_address<T>(activations), \
                        at_address<T>(tanh_cells), at_address<T>(grad_hidden), at_address<T>(grad_gates), at_address<T>(grad_initial_hidden), \
                        at_address<T>(grad_initial_cell), at_address<T>(grad_weight_t), batch, height, width, h, kernel, threads); \
        return 0;                                                                                                                \
    }

PIXELRNN_SCANS(float, f32)
PIXELRNN_SCANS(double, f64)
