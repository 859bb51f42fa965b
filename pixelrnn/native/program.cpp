// The incremental engines' per-position work as one call: a list of instructions run at column j.
//
// Python (pixelrnn/native/program.py) encodes, once per image row, everything a network computes
// at one position: matrix products against cached rows, LSTM cells, sums. Each operand is an
// address plus strides, so the same list serves every column j of the row (address + j *
// j_stride). Running the list is then one call instead of about a hundred tensor operations.
//
// Matrix layout: element (b, u) of an operand at column j is at
//     address + (j * j_stride + b * batch_stride + u * unit_stride) * sizeof(T).
#include <algorithm>
#include <cstdint>

#include "vector_math.h"

namespace {

using pixelrnn::sigmoid_;
using pixelrnn::tanh_;

struct Operand {
    int64_t address, j_stride, batch_stride, unit_stride;
};

enum OpCode : int64_t { LINEAR = 1, LSTM = 2, ADD = 3, COPY = 4 };
enum Flags : int64_t { RELU_IN = 1, RELU_OUT = 2 };

// LINEAR: out = base + add + act(x) @ weight, act = relu or identity; weight is (n_in, n_out) with
//         row stride weight_stride; out, base and add have unit stride 1; base may alias out.
// LSTM:   n_out units; x = gates [o | f | i | g] (n_out each, unit stride 1), base = the previous
//         cell, out = the hidden state, add = the new cell (written): c = f c_prev + i g, h = o tanh(c).
// ADD:    out = x + base, n_out units.   COPY: out = x, n_out units.
struct Instruction {
    int64_t op, n_in, n_out, flags, weight, weight_stride;
    Operand out, x, base, add;
};
static_assert(sizeof(Instruction) == 22 * sizeof(int64_t), "the layout program.py writes");

template <typename T>
struct View {
    T* data;
    int64_t batch_stride, unit_stride;
    T& operator()(int64_t b, int64_t u) const { return data[b * batch_stride + u * unit_stride]; }
};

template <typename T>
View<T> at(const Operand& operand, int64_t j) {
    T* data = operand.address ? reinterpret_cast<T*>(operand.address) + j * operand.j_stride : nullptr;
    return {data, operand.batch_stride, operand.unit_stride};
}

template <typename T>
inline T relu(T v) { return v < T(0) ? T(0) : v; }  // NaN passes, as in torch.relu

// One tile of LINEAR: ROWS batch rows x COLS outputs (COLS = cols when partial), accumulators in
// registers; the weight row k is read once per tile and used for every row of the tile.
template <typename T, int ROWS, int COLS, bool FULL>
inline void linear_tile(const Instruction& ins, const View<T>& out, const View<T>& x, const View<T>& base,
                        const View<T>& add, const T* weight, int64_t b0, int64_t o0, int64_t cols) {
    const int64_t n = FULL ? COLS : cols;
    T acc[ROWS][COLS];
    for (int r = 0; r < ROWS; ++r)
        for (int64_t o = 0; o < n; ++o) {
            T v = base.data ? base(b0 + r, o0 + o) : T(0);
            if (add.data) v += add(b0 + r, o0 + o);
            acc[r][o] = v;
        }
    const bool relu_in = ins.flags & RELU_IN;
    for (int64_t k = 0; k < ins.n_in; ++k) {
        const T* w = weight + k * ins.weight_stride + o0;
        for (int r = 0; r < ROWS; ++r) {
            T v = x(b0 + r, k);
            if (relu_in) v = relu(v);
            for (int64_t o = 0; o < n; ++o) acc[r][o] += v * w[o];
        }
    }
    const bool relu_out = ins.flags & RELU_OUT;
    for (int r = 0; r < ROWS; ++r)
        for (int64_t o = 0; o < n; ++o) out(b0 + r, o0 + o) = relu_out ? relu(acc[r][o]) : acc[r][o];
}

template <typename T, int ROWS>
void linear_rows(const Instruction& ins, const View<T>& out, const View<T>& x, const View<T>& base,
                 const View<T>& add, const T* weight, int64_t b0) {
    constexpr int COLS = 64 / sizeof(T);  // a cache line of outputs
    int64_t o0 = 0;
    for (; o0 + COLS <= ins.n_out; o0 += COLS) linear_tile<T, ROWS, COLS, true>(ins, out, x, base, add, weight, b0, o0, COLS);
    if (o0 < ins.n_out) linear_tile<T, ROWS, COLS, false>(ins, out, x, base, add, weight, b0, o0, ins.n_out - o0);
}

template <typename T>
void linear(const Instruction& ins, int64_t batch, int64_t j) {
    const View<T> out = at<T>(ins.out, j), x = at<T>(ins.x, j), base = at<T>(ins.base, j), add = at<T>(ins.add, j);
    const T* weight = reinterpret_cast<const T*>(ins.weight);
    int64_t b = 0;
    for (; b + 4 <= batch; b += 4) linear_rows<T, 4>(ins, out, x, base, add, weight, b);
    for (; b < batch; ++b) linear_rows<T, 1>(ins, out, x, base, add, weight, b);
}

template <typename T>
void lstm(const Instruction& ins, int64_t batch, int64_t j) {
    const View<T> hidden = at<T>(ins.out, j), gates = at<T>(ins.x, j), cell_prev = at<T>(ins.base, j), cell = at<T>(ins.add, j);
    const int64_t n = ins.n_out;
    for (int64_t b = 0; b < batch; ++b) {
        const T* g = &gates(b, 0);
        for (int64_t u = 0; u < n; ++u) {
            const T c = sigmoid_(g[n + u]) * cell_prev(b, u) + sigmoid_(g[2 * n + u]) * tanh_(g[3 * n + u]);
            cell(b, u) = c;
            hidden(b, u) = sigmoid_(g[u]) * tanh_(c);
        }
    }
}

template <typename T>
void elementwise(const Instruction& ins, int64_t batch, int64_t j) {
    const View<T> out = at<T>(ins.out, j), x = at<T>(ins.x, j), base = at<T>(ins.base, j);
    for (int64_t b = 0; b < batch; ++b)
        for (int64_t u = 0; u < ins.n_out; ++u) out(b, u) = ins.op == ADD ? x(b, u) + base(b, u) : x(b, u);
}

template <typename T>
void run(const Instruction* program, int64_t count, int64_t batch, int64_t j_begin, int64_t j_end, int64_t j_step) {
    for (int64_t j = j_begin; j != j_end; j += j_step) {
        for (int64_t index = 0; index < count; ++index) {
            const Instruction& ins = program[index];
            switch (ins.op) {
                case LINEAR: linear<T>(ins, batch, j); break;
                case LSTM: lstm<T>(ins, batch, j); break;
                default: elementwise<T>(ins, batch, j); break;
            }
        }
    }
}

}  // namespace

// Run every instruction at j = j_begin, j_begin + j_step, ... up to (not including) j_end.
extern "C" void pixelrnn_run_f32(const int64_t* program, int64_t count, int64_t batch, int64_t j_begin, int64_t j_end, int64_t j_step) {
    run<float>(reinterpret_cast<const Instruction*>(program), count, batch, j_begin, j_end, j_step);
}

extern "C" void pixelrnn_run_f64(const int64_t* program, int64_t count, int64_t batch, int64_t j_begin, int64_t j_end, int64_t j_step) {
    run<double>(reinterpret_cast<const Instruction*>(program), count, batch, j_begin, j_end, j_step);
}
