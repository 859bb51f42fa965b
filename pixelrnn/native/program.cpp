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

#include "dense.h"
#include "lstm.h"

using pixelrnn::at_address;

namespace {

using pixelrnn::Dense;
using pixelrnn::View;

struct Operand {
    int64_t address, i_stride, j_stride, batch_stride, unit_stride;
};

enum OpCode : int64_t { LINEAR = 1, LSTM = 2, ADD = 3, COPY = 4 };
enum Flags : int64_t { RELU_IN = 1, RELU_OUT = 2, PADDED = 4 };

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
View<T> at(const Operand& operand, int64_t i, int64_t j) {
    T* data = operand.address ? reinterpret_cast<T*>(operand.address) + i * operand.i_stride + j * operand.j_stride : nullptr;
    return {data, operand.batch_stride, operand.unit_stride};
}

template <typename T>
void linear(const Instruction& ins, int64_t batch, int64_t i, int64_t j) {
    const Dense op{ins.n_in, ins.n_out, ins.weight_stride, ins.segment, ins.segment_stride, bool(ins.flags & RELU_OUT),
                   bool(ins.flags & PADDED)};
    pixelrnn::dense<T>(op, ins.flags & RELU_IN, batch, at<T>(ins.out, i, j), at<T>(ins.x, i, j), at<T>(ins.base, i, j),
                       at<T>(ins.add, i, j), reinterpret_cast<const T*>(ins.weight));
}

template <typename T>
void lstm(const Instruction& ins, int64_t batch, int64_t i, int64_t j) {
    const View<T> hidden = at<T>(ins.out, i, j), gates = at<T>(ins.x, i, j), cell_prev = at<T>(ins.base, i, j), cell = at<T>(ins.add, i, j);
    const int64_t n = ins.n_out;
    std::vector<T> scratch(5 * n);  // the activations and tanh(c), which only the scans keep
    for (int64_t b = 0; b < batch; ++b)
        pixelrnn::lstm_forward<T>(n, &gates(b, 0), scratch.data(), scratch.data() + 4 * n, [&](int64_t u) { return cell_prev(b, u); },
                                  [&](int64_t u, T c, T h) {
                                      cell(b, u) = c;
                                      hidden(b, u) = h;
                                  });
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
                case LINEAR: linear<T>(ins, batch, i, j); break;
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

// run: every instruction at row i and columns j = j_begin, j_begin + j_step, ... up to (not including) j_end.
#define PIXELRNN_PROGRAMS(T, SUFFIX)                                                                                             \
    extern "C" int64_t pixelrnn_run_##SUFFIX(const int64_t* program, int64_t count, int64_t batch, int64_t i, int64_t j_begin,   \
                                             int64_t j_end, int64_t j_step) {                                                    \
        run<T>(reinterpret_cast<const Instruction*>(program), count, batch, i, j_begin, j_end, j_step);                          \
        return 0;                                                                                                                \
    }                                                                                                                            \
    extern "C" int64_t pixelrnn_write_##SUFFIX(int64_t values, int64_t values_stride, int64_t table, int64_t levels, int64_t out, \
                                               int64_t out_stride, int64_t batch) {                                              \
        return write_values<T>(at_address<const int64_t>(values), values_stride, at_address<const T>(table), levels, at_address<T>(out), out_stride, batch); \
    }

PIXELRNN_PROGRAMS(float, f32)
PIXELRNN_PROGRAMS(double, f64)
