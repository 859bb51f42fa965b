// A small matrix product for the native kernels: out = base + add + act(x) @ weight over a few rows.
//
// Sizes are those of the paper's networks at one position (a batch of 16 rows, 32 to 1024 units),
// where a BLAS call costs more to set up than to run. Tiles of 4 rows x 2 vectors of outputs keep
// their accumulators in vector registers (GCC/Clang vector types: the compiler's own vectoriser
// regroups these loops badly); the tile's weight columns stay in cache while the rows go through.
// Every branch on the data is a select, never a jump: a jump on a ReLU's sign would be mispredicted
// half the time.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace pixelrnn {

#ifndef PIXELRNN_VECTOR_BYTES
#define PIXELRNN_VECTOR_BYTES 16  // SSE2, on every x86-64; the build sets 32 (AVX2) or 64 (AVX-512)
#endif
template <typename T> struct VectorOf;
template <> struct VectorOf<float> { typedef float type __attribute__((vector_size(PIXELRNN_VECTOR_BYTES))); };
template <> struct VectorOf<double> { typedef double type __attribute__((vector_size(PIXELRNN_VECTOR_BYTES))); };
template <typename T>
using Vector = typename VectorOf<T>::type;

// An address passed from Python (an int64) as a typed pointer.
template <typename T>
inline T* at_address(int64_t address) { return reinterpret_cast<T*>(address); }

// Row b of a product's views: row `index` of block `block` (see View).
struct Row {
    int64_t block, index;
};

// Rows 0, 1, 2, ... in order as (block, index), blocks of `inner` rows (0: one block); counted, not
// divided, since the tiles ask for every row's place.
struct Rows {
    int64_t inner, block = 0, index = 0;
    Row next() {
        const Row row{block, index};
        if (++index == inner) index = 0, ++block;
        return row;
    }
};

// Element (b, u) of a matrix: data[b * batch_stride + u * unit_stride]. Where the product's rows
// come in blocks of `inner` (e.g. one diagonal's positions in each of several images), row b is
// row b % inner of block b / inner, and blocks are outer_stride apart; the views of one product
// share `inner`.
template <typename T>
struct View {
    T* data;
    int64_t batch_stride, unit_stride;
    int64_t inner = 0, outer_stride = 0;
    T* row(Row at) const { return data + at.block * outer_stride + at.index * batch_stride; }
    T& operator()(Row at, int64_t u) const { return row(at)[u * unit_stride]; }
    T& operator()(int64_t b, int64_t u) const { return data[b * batch_stride + u * unit_stride]; }  // a view of one block
};

// The shape of a product: weight (n_in, n_out) with row stride weight_stride; x's units may come
// in segments (rows of a patch): unit s * segment + t at s * segment_stride + t * unit_stride, and
// so may the weight's rows where weight_segment_stride is set (row s * segment + t at
// s * weight_segment_stride + t * weight_stride: a sum over several images' positions).
// padded: each weight row may be read up to the next multiple of 16 columns (whatever is there only
// reaches outputs that are not written), so the last few outputs are a vector tile too instead of
// one output at a time.
struct Dense {
    int64_t n_in, n_out, weight_stride, segment, segment_stride;
    bool relu_out, padded = false;
    int64_t weight_segment_stride = 0;
};

template <typename T>
inline T relu(T v) { return v < T(0) ? T(0) : v; }  // NaN passes, as in torch.relu

template <typename T>
inline Vector<T> load(const T* p) {
    Vector<T> v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

// The k loop of a product, segment by segment: visit(offset of weight row k, offset of x[b, k] from x[b, 0]).
template <typename Visit>
inline void over_inputs(const Dense& op, int64_t unit_stride, Visit visit) {
    const int64_t segment = op.segment ? op.segment : op.n_in;
    const int64_t weight_segment = op.weight_segment_stride ? op.weight_segment_stride : segment * op.weight_stride;
    for (int64_t k0 = 0, offset = 0, row = 0; k0 < op.n_in; k0 += segment, offset += op.segment_stride, row += weight_segment) {
        const int64_t length = std::min(segment, op.n_in - k0);
        for (int64_t t = 0; t < length; ++t) visit(row + t * op.weight_stride, offset + t * unit_stride);
    }
}

// A tile of ROWS rows (at[0 .. ROWS-1]) x VECTORS vectors of outputs; where PARTIAL, only the first
// `valid` lanes of the last vector are outputs (the weights are padded, base, add and out are read
// and written lane by lane there).
template <typename T, int ROWS, int VECTORS, bool RELU_IN, bool PARTIAL = false>
inline void linear_tile(const Dense& ins, View<T> out, View<T> x, View<T> base, View<T> add, const T* weight,
                        const Row* at, int64_t o0, int64_t valid = 0) {
    constexpr int lanes = sizeof(Vector<T>) / sizeof(T);
    Vector<T> acc[ROWS][VECTORS];
    for (int r = 0; r < ROWS; ++r) {
        const T* base_row = base.data ? base.row(at[r]) + o0 : nullptr;
        const T* add_row = add.data ? add.row(at[r]) + o0 : nullptr;
        for (int v = 0; v < VECTORS; ++v) {
            if (PARTIAL && v == VECTORS - 1) {
                acc[r][v] = Vector<T>{};
                for (int64_t lane = 0; lane < valid; ++lane)
                    acc[r][v][lane] = (base_row ? base_row[v * lanes + lane] : T(0)) + (add_row ? add_row[v * lanes + lane] : T(0));
                continue;
            }
            acc[r][v] = base_row ? load(base_row + v * lanes) : Vector<T>{};
            if (add_row) acc[r][v] += load(add_row + v * lanes);
        }
    }
    const T* rows[ROWS];
    for (int r = 0; r < ROWS; ++r) rows[r] = x.row(at[r]);
    over_inputs(ins, x.unit_stride, [&](int64_t weight_row, int64_t offset) {
        const T* w = weight + weight_row + o0;
        Vector<T> row[VECTORS];
        for (int v = 0; v < VECTORS; ++v) row[v] = load(w + v * lanes);
        for (int r = 0; r < ROWS; ++r) {
            const T value = RELU_IN ? relu(rows[r][offset]) : rows[r][offset];
            for (int v = 0; v < VECTORS; ++v) acc[r][v] += value * row[v];
        }
    });
    const Vector<T> zero{};
    const bool relu_out = ins.relu_out;
    for (int r = 0; r < ROWS; ++r) {
        T* out_row = out.row(at[r]) + o0;  // out's units are contiguous
        for (int v = 0; v < VECTORS; ++v) {
            const Vector<T> result = relu_out ? (acc[r][v] < zero ? zero : acc[r][v]) : acc[r][v];
            if (PARTIAL && v == VECTORS - 1) {
                for (int64_t lane = 0; lane < valid; ++lane) out_row[v * lanes + lane] = result[lane];
            } else {
                std::memcpy(out_row + v * lanes, &result, sizeof result);
            }
        }
    }
}

// The outputs left over by the vector tiles (fewer than a vector's lanes), one at a time.
template <typename T, bool RELU_IN>
inline void linear_column(const Dense& ins, View<T> out, View<T> x, View<T> base, View<T> add, const T* weight,
                          Row at, int64_t o) {
    T acc = base.data ? base(at, o) : T(0);
    if (add.data) acc += add(at, o);
    const T* row = x.row(at);
    over_inputs(ins, x.unit_stride, [&](int64_t weight_row, int64_t offset) {
        const T value = RELU_IN ? relu(row[offset]) : row[offset];
        acc += value * weight[weight_row + o];
    });
    out(at, o) = ins.relu_out ? relu(acc) : acc;
}

// Every row in tiles of 4 rows, then one at a time: tile(rows' places, count).
template <typename Tile>
inline void over_rows(int64_t rows, int64_t inner, Tile tile) {
    Rows cursor{inner};
    Row at[4];
    int64_t b = 0;
    for (; b + 4 <= rows; b += 4) {
        for (Row& row : at) row = cursor.next();
        tile(at, 4);
    }
    for (; b < rows; ++b) {
        at[0] = cursor.next();
        tile(at, 1);
    }
}

// Tiles of VECTORS vectors of outputs, each for every batch row in turn: the tile's weight columns
// (n_in x VECTORS vectors) stay in cache while the batch goes through them.
template <typename T, int VECTORS, bool RELU_IN, bool PARTIAL = false>
void linear_columns(const Dense& ins, int64_t batch, View<T> out, View<T> x, View<T> base, View<T> add,
                    const T* weight, int64_t o0, int64_t valid = 0) {
    over_rows(batch, out.inner, [&](const Row* at, int count) {
        if (count == 4) linear_tile<T, 4, VECTORS, RELU_IN, PARTIAL>(ins, out, x, base, add, weight, at, o0, valid);
        else linear_tile<T, 1, VECTORS, RELU_IN, PARTIAL>(ins, out, x, base, add, weight, at, o0, valid);
    });
}

// out = base + add + act(x) @ weight for rows 0 .. rows-1; out, base and add have unit stride 1 and
// base may be out itself; act is relu where RELU_IN.
template <typename T, bool RELU_IN>
void dense(const Dense& ins, int64_t rows, View<T> out, View<T> x, View<T> base, View<T> add, const T* weight) {
    constexpr int lanes = sizeof(Vector<T>) / sizeof(T);
    int64_t o0 = 0;
    for (; o0 + 2 * lanes <= ins.n_out; o0 += 2 * lanes) linear_columns<T, 2, RELU_IN>(ins, rows, out, x, base, add, weight, o0);
    for (; o0 + lanes <= ins.n_out; o0 += lanes) linear_columns<T, 1, RELU_IN>(ins, rows, out, x, base, add, weight, o0);
    if (o0 < ins.n_out && ins.padded) {
        linear_columns<T, 1, RELU_IN, true>(ins, rows, out, x, base, add, weight, o0, ins.n_out - o0);
        return;
    }
    for (; o0 < ins.n_out; ++o0) {
        Rows cursor{out.inner};
        for (int64_t b = 0; b < rows; ++b) linear_column<T, RELU_IN>(ins, out, x, base, add, weight, cursor.next(), o0);
    }
}

template <typename T>
void dense(const Dense& ins, bool relu_in, int64_t rows, View<T> out, View<T> x, View<T> base, View<T> add, const T* weight) {
    if (relu_in) dense<T, true>(ins, rows, out, x, base, add, weight);
    else dense<T, false>(ins, rows, out, x, base, add, weight);
}

// Plain product out (+)= x @ weight without bias, all contiguous rows: the scans' recurrent step.
template <typename T>
void dense(int64_t rows, int64_t n_in, int64_t n_out, const T* x, int64_t x_stride, const T* weight, int64_t weight_stride,
           T* out, int64_t out_stride, const T* base) {
    const Dense op{n_in, n_out, weight_stride, 0, 0, false};
    dense<T, false>(op, rows, View<T>{out, out_stride, 1}, View<T>{const_cast<T*>(x), x_stride, 1},
                    View<T>{const_cast<T*>(base), out_stride, 1}, View<T>{nullptr, 0, 0}, weight);
}

}  // namespace pixelrnn
