// The incremental engines' per-position work as one call: a list of instructions run at (i, j).
//
// Python (pixelrnn/native/program.py) encodes, once per batch of images, everything a network
// computes at one position: matrix products against cached rows, LSTM cells, sums. Each operand
// is an address plus strides, so the same list serves every position (i, j) of the image.
// Running the list is then one call instead of about a hundred tensor operations.
//
// Element (b, u) of an operand at position (i, j) is at
//     address + (i * i_stride + j * j_stride + b * batch_stride + u * unit_stride) * sizeof(T);
// a LINEAR's input may come in segments (rows of a patch): unit u = s * segment + t is at
//     ... + s * segment_stride + t * unit_stride.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "vector_math.h"

namespace {

using pixelrnn::sigmoid_;
using pixelrnn::tanh_;

struct Operand {
    int64_t address, i_stride, j_stride, batch_stride, unit_stride;
};

enum OpCode : int64_t { LINEAR = 1, LSTM = 2, ADD = 3, COPY = 4 };
enum Flags : int64_t { RELU_IN = 1, RELU_OUT = 2 };

// LINEAR: out = base + add + act(x) @ weight, act = relu or identity; weight is (n_in, n_out) with
//         row stride weight_stride; out, base and add have unit stride 1; base may alias out.
// LSTM:   n_out units; x = gates [o | f | i | g] (n_out each, unit stride 1), base = the previous
//         cell, out = the hidden state, add = the new cell (written): c = f c_prev + i g, h = o tanh(c).
// ADD:    out = x + base, n_out units.   COPY: out = x, n_out units.
struct Instruction {
    int64_t op, n_in, n_out, flags, weight, weight_stride, segment, segment_stride;
    Operand out, x, base, add;
};
static_assert(sizeof(Instruction) == 28 * sizeof(int64_t), "the layout program.py writes");

template <typename T>
struct View {
    T* data;
    int64_t batch_stride, unit_stride;
    T& operator()(int64_t b, int64_t u) const { return data[b * batch_stride + u * unit_stride]; }
};

template <typename T>
View<T> at(const Operand& operand, int64_t i, int64_t j) {
    T* data = operand.address ? reinterpret_cast<T*>(operand.address) + i * operand.i_stride + j * operand.j_stride : nullptr;
    return {data, operand.batch_stride, operand.unit_stride};
}

// The k loop of a LINEAR, segment by segment: visit(k, offset of x[b, k] from x[b, 0]).
template <typename Visit>
inline void over_inputs(const Instruction& ins, int64_t unit_stride, Visit visit) {
    const int64_t segment = ins.segment ? ins.segment : ins.n_in;
    for (int64_t k0 = 0, offset = 0; k0 < ins.n_in; k0 += segment, offset += ins.segment_stride) {
        const int64_t length = std::min(segment, ins.n_in - k0);
        for (int64_t t = 0; t < length; ++t) visit(k0 + t, offset + t * unit_stride);
    }
}

template <typename T>
inline T relu(T v) { return v < T(0) ? T(0) : v; }  // NaN passes, as in torch.relu

// LINEAR in tiles of ROWS batch rows x VECTORS * lanes outputs, the accumulators in vector registers
// (GCC/Clang vector types: the compiler's own vectoriser regroups these loops badly). Weight row k
// is loaded once per tile and multiplied by each row's x[b, k].
#ifndef PIXELRNN_VECTOR_BYTES
#define PIXELRNN_VECTOR_BYTES 16  // SSE2, on every x86-64; the build sets 32 (AVX2) or 64 (AVX-512)
#endif
template <typename T> struct VectorOf;
template <> struct VectorOf<float> { typedef float type __attribute__((vector_size(PIXELRNN_VECTOR_BYTES))); };
template <> struct VectorOf<double> { typedef double type __attribute__((vector_size(PIXELRNN_VECTOR_BYTES))); };
template <typename T>
using Vector = typename VectorOf<T>::type;

template <typename T>
inline Vector<T> load(const T* p) {
    Vector<T> v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

// Every branch on the data is a select, never a jump: with a trained model's activations a jump on
// a ReLU's sign would be mispredicted half the time. The input ReLU is a template argument.
template <typename T, int ROWS, int VECTORS, bool RELU_IN>
inline void linear_tile(const Instruction& ins, View<T> out, View<T> x, View<T> base, View<T> add, const T* weight,
                        int64_t b0, int64_t o0) {
    constexpr int lanes = sizeof(Vector<T>) / sizeof(T);
    Vector<T> acc[ROWS][VECTORS];
    for (int r = 0; r < ROWS; ++r)
        for (int v = 0; v < VECTORS; ++v) {
            acc[r][v] = base.data ? load(&base(b0 + r, o0 + v * lanes)) : Vector<T>{};
            if (add.data) acc[r][v] += load(&add(b0 + r, o0 + v * lanes));
        }
    const T* rows[ROWS];
    for (int r = 0; r < ROWS; ++r) rows[r] = &x(b0 + r, 0);
    over_inputs(ins, x.unit_stride, [&](int64_t k, int64_t offset) {
        const T* w = weight + k * ins.weight_stride + o0;
        Vector<T> row[VECTORS];
        for (int v = 0; v < VECTORS; ++v) row[v] = load(w + v * lanes);
        for (int r = 0; r < ROWS; ++r) {
            const T value = RELU_IN ? relu(rows[r][offset]) : rows[r][offset];
            for (int v = 0; v < VECTORS; ++v) acc[r][v] += value * row[v];
        }
    });
    const Vector<T> zero{};
    const bool relu_out = ins.flags & RELU_OUT;
    for (int r = 0; r < ROWS; ++r)
        for (int v = 0; v < VECTORS; ++v) {
            const Vector<T> result = relu_out ? (acc[r][v] < zero ? zero : acc[r][v]) : acc[r][v];
            std::memcpy(&out(b0 + r, o0 + v * lanes), &result, sizeof result);  // out's units are contiguous
        }
}

// The outputs left over by the vector tiles (fewer than a vector's lanes), one at a time.
template <typename T, bool RELU_IN>
inline void linear_column(const Instruction& ins, View<T> out, View<T> x, View<T> base, View<T> add, const T* weight,
                          int64_t b, int64_t o) {
    T acc = base.data ? base(b, o) : T(0);
    if (add.data) acc += add(b, o);
    const T* row = &x(b, 0);
    over_inputs(ins, x.unit_stride, [&](int64_t k, int64_t offset) {
        const T value = RELU_IN ? relu(row[offset]) : row[offset];
        acc += value * weight[k * ins.weight_stride + o];
    });
    out(b, o) = (ins.flags & RELU_OUT) ? relu(acc) : acc;
}

// Tiles of VECTORS vectors of outputs, each for every batch row in turn: the tile's weight columns
// (n_in x VECTORS vectors) stay in cache while the batch goes through them.
template <typename T, int VECTORS, bool RELU_IN>
void linear_columns(const Instruction& ins, int64_t batch, View<T> out, View<T> x, View<T> base, View<T> add,
                    const T* weight, int64_t o0) {
    int64_t b = 0;
    for (; b + 4 <= batch; b += 4) linear_tile<T, 4, VECTORS, RELU_IN>(ins, out, x, base, add, weight, b, o0);
    for (; b < batch; ++b) linear_tile<T, 1, VECTORS, RELU_IN>(ins, out, x, base, add, weight, b, o0);
}

template <typename T, bool RELU_IN>
void linear(const Instruction& ins, int64_t batch, int64_t i, int64_t j) {
    constexpr int lanes = sizeof(Vector<T>) / sizeof(T);
    const View<T> out = at<T>(ins.out, i, j), x = at<T>(ins.x, i, j), base = at<T>(ins.base, i, j), add = at<T>(ins.add, i, j);
    const T* weight = reinterpret_cast<const T*>(ins.weight);
    int64_t o0 = 0;
    for (; o0 + 2 * lanes <= ins.n_out; o0 += 2 * lanes) linear_columns<T, 2, RELU_IN>(ins, batch, out, x, base, add, weight, o0);
    for (; o0 + lanes <= ins.n_out; o0 += lanes) linear_columns<T, 1, RELU_IN>(ins, batch, out, x, base, add, weight, o0);
    for (; o0 < ins.n_out; ++o0)
        for (int64_t b = 0; b < batch; ++b) linear_column<T, RELU_IN>(ins, out, x, base, add, weight, b, o0);
}

template <typename T>
void lstm(const Instruction& ins, int64_t batch, int64_t i, int64_t j) {
    const View<T> hidden = at<T>(ins.out, i, j), gates = at<T>(ins.x, i, j), cell_prev = at<T>(ins.base, i, j), cell = at<T>(ins.add, i, j);
    const int64_t n = ins.n_out;
    // The activations first, over contiguous scratch, so that the loops that call exp vectorise.
    std::vector<T> scratch(5 * n);
    T* activations = scratch.data();  // [sigmoid(o) | sigmoid(f) | sigmoid(i) | tanh(g)]
    T* cells = activations + 4 * n;
    for (int64_t b = 0; b < batch; ++b) {
        const T* g = &gates(b, 0);
        for (int64_t u = 0; u < 3 * n; ++u) activations[u] = sigmoid_(g[u]);
        for (int64_t u = 3 * n; u < 4 * n; ++u) activations[u] = tanh_(g[u]);
        for (int64_t u = 0; u < n; ++u) cells[u] = activations[n + u] * cell_prev(b, u) + activations[2 * n + u] * activations[3 * n + u];
        for (int64_t u = 0; u < n; ++u) {
            cell(b, u) = cells[u];
            cells[u] = tanh_(cells[u]);
        }
        for (int64_t u = 0; u < n; ++u) hidden(b, u) = activations[u] * cells[u];
    }
}

template <typename T>
void elementwise(const Instruction& ins, int64_t batch, int64_t i, int64_t j) {
    const View<T> out = at<T>(ins.out, i, j), x = at<T>(ins.x, i, j), base = at<T>(ins.base, i, j);
    for (int64_t b = 0; b < batch; ++b)
        for (int64_t u = 0; u < ins.n_out; ++u) out(b, u) = ins.op == ADD ? x(b, u) + base(b, u) : x(b, u);
}

template <typename T>
void run(const Instruction* program, int64_t count, int64_t batch, int64_t i, int64_t j_begin, int64_t j_end, int64_t j_step) {
    for (int64_t j = j_begin; j != j_end; j += j_step) {
        for (int64_t index = 0; index < count; ++index) {
            const Instruction& ins = program[index];
            switch (ins.op) {
                case LINEAR:
                    if (ins.flags & RELU_IN) linear<T, true>(ins, batch, i, j);
                    else linear<T, false>(ins, batch, i, j);
                    break;
                case LSTM: lstm<T>(ins, batch, i, j); break;
                default: elementwise<T>(ins, batch, i, j); break;
            }
        }
    }
}

// out[b] = table[values[b]] for the sub-pixels just fixed; returns how many values lie outside the table.
template <typename T>
int64_t write_values(const int64_t* values, int64_t values_stride, const T* table, int64_t levels, T* out,
                     int64_t out_stride, int64_t batch) {
    int64_t outside = 0;
    for (int64_t b = 0; b < batch; ++b) {
        const int64_t value = values[b * values_stride];
        if (value < 0 || value >= levels) {
            ++outside;
            continue;
        }
        out[b * out_stride] = table[value];
    }
    return outside;
}

}  // namespace

// Run every instruction at row i and columns j = j_begin, j_begin + j_step, ... up to (not including) j_end.
extern "C" int64_t pixelrnn_run_f32(const int64_t* program, int64_t count, int64_t batch, int64_t i, int64_t j_begin,
                                    int64_t j_end, int64_t j_step) {
    run<float>(reinterpret_cast<const Instruction*>(program), count, batch, i, j_begin, j_end, j_step);
    return 0;
}

extern "C" int64_t pixelrnn_run_f64(const int64_t* program, int64_t count, int64_t batch, int64_t i, int64_t j_begin,
                                    int64_t j_end, int64_t j_step) {
    run<double>(reinterpret_cast<const Instruction*>(program), count, batch, i, j_begin, j_end, j_step);
    return 0;
}

extern "C" int64_t pixelrnn_write_f32(int64_t values, int64_t values_stride, int64_t table, int64_t levels, int64_t out,
                                      int64_t out_stride, int64_t batch) {
    return write_values<float>(reinterpret_cast<const int64_t*>(values), values_stride, reinterpret_cast<const float*>(table),
                               levels, reinterpret_cast<float*>(out), out_stride, batch);
}

extern "C" int64_t pixelrnn_write_f64(int64_t values, int64_t values_stride, int64_t table, int64_t levels, int64_t out,
                                      int64_t out_stride, int64_t batch) {
    return write_values<double>(reinterpret_cast<const int64_t*>(values), values_stride, reinterpret_cast<const double*>(table),
                                levels, reinterpret_cast<double*>(out), out_stride, batch);
}
