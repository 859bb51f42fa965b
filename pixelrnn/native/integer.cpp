// The integer coding model's per-position work as one call (pixelrnn/codec/native_integer.py).
//
// The engines of pixelrnn/codec/integer_engines.py keep every per-position value features-major,
// (units, batch), in float64 holding integers; every sum is exact (pixelrnn/codec/fixed_point.py),
// so computing it here, in another order and with fused multiply-adds, gives the same value bit
// for bit. Rounding is nearbyint under the default rounding mode (ties to even, as numpy's rint).
//
// Element (r, b) of an operand at position (i, j) is at
//     address + (p * i_stride + j * j_stride + r * row_stride + b * batch_stride) * 8 bytes,
// p = i mod period where period > 0 (ring buffers, and weights that change with the row's phase), else i.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "dense.h"

namespace {

struct Operand {
    int64_t address, i_stride, period, j_stride, row_stride, batch_stride;

    // The view at (i, j), from image b0 on (images = ``batch_stride``; not for weights).
    double* at(int64_t i, int64_t j, int64_t b0 = 0) const {
        if (!address) return nullptr;
        const int64_t phase = period > 0 ? i % period : i;
        return reinterpret_cast<double*>(address) + phase * i_stride + j * j_stride + b0 * batch_stride;
    }
};

enum OpCode : int64_t { PRODUCT = 1, CELL = 2, ADD = 3, COPY = 4 };
enum Flags : int64_t { CLAMP_IN = 1, ROUND = 2, CLAMP_OUT = 4, INT64_OUT = 8 };

// PRODUCT: out(o, b) = post(sum_k weight(o, k) pre(x(k, b))) + add(o, b); weight rows contiguous,
//          x's batch contiguous; pre = clamp to [0, relu_max] where CLAMP_IN; post = round where
//          ROUND, then clamp where CLAMP_OUT; out is written as int64 where INT64_OUT.
// CELL:    the integer LSTM update of n_out units from x = gate sums (4n, batch) [o | f | i | g]:
//          weight = the previous cell, add = the new cell, out = the hidden state.
// ADD:     out = x + add (n_out rows).   COPY: out = x (n_out rows).
struct Instruction {
    int64_t op, n_out, n_in, flags;
    Operand weight, out, x, add;
};
static_assert(sizeof(Instruction) == 28 * sizeof(int64_t), "the layout native_integer.py writes");

// The model's constants: the ReLU clamp, the tables (indexed k + half) and their length.
struct Context {
    double relu_max;
    const double *sigmoid, *tanh_gate, *tanh_cell;
    int64_t table_length, half;
};

inline double clamp(double v, double high) { return std::min(std::max(v, 0.0), high); }

using Vector = pixelrnn::Vector<double>;
constexpr int LANES = sizeof(Vector) / sizeof(double);

inline Vector clamp(Vector v, Vector high) {
    const Vector zero{};
    v = v < zero ? zero : v;
    return v > high ? high : v;
}

// The results of output o for images b0 .. b0 + count - 1: rounded, clamped, the addend, stored.
// One loop per step, so that each vectorises.
inline void store(const Instruction& ins, const Context& ctx, double* out, const double* add, int64_t o, int64_t b0, int64_t count,
                  double* v) {
    if (ins.flags & ROUND)
        for (int64_t t = 0; t < count; ++t) v[t] = std::nearbyint(v[t]);
    if (ins.flags & CLAMP_OUT)
        for (int64_t t = 0; t < count; ++t) v[t] = clamp(v[t], ctx.relu_max);
    if (add) {
        const double* a = add + o * ins.add.row_stride + b0 * ins.add.batch_stride;
        for (int64_t t = 0; t < count; ++t) v[t] += a[t * ins.add.batch_stride];
    }
    const int64_t offset = o * ins.out.row_stride + b0 * ins.out.batch_stride, stride = ins.out.batch_stride;
    if (ins.flags & INT64_OUT) {
        int64_t* o64 = reinterpret_cast<int64_t*>(out) + offset;
        for (int64_t t = 0; t < count; ++t) o64[t * stride] = static_cast<int64_t>(v[t]);
    } else if (stride == 1) {
        for (int64_t t = 0; t < count; ++t) out[offset + t] = v[t];
    } else {
        for (int64_t t = 0; t < count; ++t) out[offset + t * stride] = v[t];
    }
}

// ROWS outputs x VECTORS vectors of images, accumulated in vector registers: per input k, the
// images' values are loaded once and each output's weight broadcast against them.
template <int ROWS, int VECTORS, bool CLAMP_INPUT>
inline void product_tile(const Instruction& ins, const Context& ctx, const double* w, const double* x, double* out, const double* add,
                         int64_t o0, int64_t b0) {
    Vector acc[ROWS][VECTORS] = {};
    Vector high;
    for (int t = 0; t < LANES; ++t) high[t] = ctx.relu_max;
    const int64_t w_rows = ins.weight.row_stride, x_rows = ins.x.row_stride;
    for (int64_t k = 0; k < ins.n_in; ++k) {
        Vector value[VECTORS];
        for (int v = 0; v < VECTORS; ++v) {
            value[v] = pixelrnn::load(x + k * x_rows + b0 + v * LANES);
            if (CLAMP_INPUT) value[v] = clamp(value[v], high);
        }
        for (int r = 0; r < ROWS; ++r) {
            const double weight = w[(o0 + r) * w_rows + k];
            for (int v = 0; v < VECTORS; ++v) acc[r][v] += weight * value[v];
        }
    }
    for (int r = 0; r < ROWS; ++r) {
        double values[VECTORS * LANES];
        std::memcpy(values, acc[r], sizeof values);
        store(ins, ctx, out, add, o0 + r, b0, VECTORS * LANES, values);
    }
}

template <int VECTORS, bool CLAMP_INPUT>
inline void product_columns(const Instruction& ins, const Context& ctx, const double* w, const double* x, double* out,
                            const double* add, int64_t b0) {
    int64_t o0 = 0;
    for (; o0 + 4 <= ins.n_out; o0 += 4) product_tile<4, VECTORS, CLAMP_INPUT>(ins, ctx, w, x, out, add, o0, b0);
    for (; o0 < ins.n_out; ++o0) product_tile<1, VECTORS, CLAMP_INPUT>(ins, ctx, w, x, out, add, o0, b0);
}

template <bool CLAMP_INPUT>
void product(const Instruction& ins, const Context& ctx, int64_t batch, const double* w, const double* x, double* out,
             const double* add) {
    int64_t b0 = 0;
    for (; b0 + 4 * LANES <= batch; b0 += 4 * LANES) product_columns<4, CLAMP_INPUT>(ins, ctx, w, x, out, add, b0);
    for (; b0 + 2 * LANES <= batch; b0 += 2 * LANES) product_columns<2, CLAMP_INPUT>(ins, ctx, w, x, out, add, b0);
    for (; b0 + LANES <= batch; b0 += LANES) product_columns<1, CLAMP_INPUT>(ins, ctx, w, x, out, add, b0);
    for (; b0 < batch; ++b0)  // the images left over by the vectors, one at a time
        for (int64_t o = 0; o < ins.n_out; ++o) {
            double acc = 0.0;
            for (int64_t k = 0; k < ins.n_in; ++k) {
                const double value = x[k * ins.x.row_stride + b0];
                acc += w[o * ins.weight.row_stride + k] * (CLAMP_INPUT ? clamp(value, ctx.relu_max) : value);
            }
            store(ins, ctx, out, add, o, b0, 1, &acc);
        }
}

void product(const Instruction& ins, const Context& ctx, int64_t batch, int64_t i, int64_t j, int64_t b0) {
    const double* w = ins.weight.at(i, j);
    const double* x = ins.x.at(i, j, b0);
    double* out = ins.out.at(i, j, b0);
    const double* add = ins.add.at(i, j, b0);
    if (ins.flags & CLAMP_IN) product<true>(ins, ctx, batch, w, x, out, add);
    else product<false>(ins, ctx, batch, w, x, out, add);
}

// Table positions of rounded sums (v + offset, clamped to the table): one loop per step, so that it vectorises.
inline void table_positions(const double* v, double offset, int64_t count, int64_t length, int64_t* out) {
    for (int64_t b = 0; b < count; ++b) out[b] = static_cast<int64_t>(std::nearbyint(v[b]) + offset);
    for (int64_t b = 0; b < count; ++b) out[b] = std::min(std::max(out[b], int64_t(0)), length - 1);
}

// pixelrnn/codec/integer_engines.py IntegerEngine._cell, a unit at a time over the batch (in
// blocks of BLOCK images, each step a loop of its own).
void cell(const Instruction& ins, const Context& ctx, int64_t batch, int64_t i, int64_t j, int64_t first) {
    constexpr int64_t BLOCK = 64;
    const int64_t n = ins.n_out, length = ctx.table_length, gate_rows = ins.x.row_stride;
    const double* gates = ins.x.at(i, j, first);
    const double* before = ins.weight.at(i, j, first);
    double* cell = ins.add.at(i, j, first);
    double* hidden = ins.out.at(i, j, first);
    int64_t o[BLOCK], f[BLOCK], in[BLOCK], g[BLOCK], t[BLOCK];
    for (int64_t u = 0; u < n; ++u)
        for (int64_t b0 = 0; b0 < batch; b0 += BLOCK) {
            const int64_t count = std::min(BLOCK, batch - b0);
            table_positions(gates + u * gate_rows + b0, 0.0, count, length, o);
            table_positions(gates + (n + u) * gate_rows + b0, 0.0, count, length, f);
            table_positions(gates + (2 * n + u) * gate_rows + b0, 0.0, count, length, in);
            table_positions(gates + (3 * n + u) * gate_rows + b0, 0.0, count, length, g);
            const double* c_prev = before + u * ins.weight.row_stride + b0;
            double* c_new = cell + u * ins.add.row_stride + b0;
            double* h = hidden + u * ins.out.row_stride + b0;
            for (int64_t b = 0; b < count; ++b) {
                const double kept = ctx.sigmoid[f[b]] * c_prev[b];
                const double written = ctx.sigmoid[in[b]] * ctx.tanh_gate[g[b]];
                c_new[b] = std::nearbyint(kept + written);
            }
            table_positions(c_new, double(ctx.half), count, length, t);
            for (int64_t b = 0; b < count; ++b) h[b] = std::nearbyint(ctx.sigmoid[o[b]] * ctx.tanh_cell[t[b]]);
        }
}

void elementwise(const Instruction& ins, int64_t batch, int64_t i, int64_t j, int64_t b0) {
    const double* x = ins.x.at(i, j, b0);
    const double* add = ins.add.at(i, j, b0);
    double* out = ins.out.at(i, j, b0);
    for (int64_t r = 0; r < ins.n_out; ++r)
        for (int64_t b = 0; b < batch; ++b)
            out[r * ins.out.row_stride + b] = ins.op == ADD ? x[r * ins.x.row_stride + b] + add[r * ins.add.row_stride + b]
                                                            : x[r * ins.x.row_stride + b];
}

// The program for images b0 .. b0 + batch - 1 (images never interact: every operand but a product's
// weights has its images on one axis).
void run_images(const Instruction* instructions, int64_t count, const Context& ctx, int64_t batch, int64_t b0, int64_t i,
                int64_t j_begin, int64_t j_end, int64_t j_step) {
    for (int64_t j = j_begin; j != j_end; j += j_step)
        for (int64_t index = 0; index < count; ++index) {
            const Instruction& ins = instructions[index];
            switch (ins.op) {
                case PRODUCT: product(ins, ctx, batch, i, j, b0); break;
                case CELL: cell(ins, ctx, batch, i, j, b0); break;
                default: elementwise(ins, batch, i, j, b0); break;
            }
        }
}

}  // namespace

// Every instruction at row i and columns j = j_begin, j_begin + j_step, ... up to (not including) j_end.
// threads > 1: the images in that many groups (whole vectors each), one per OpenMP thread; every
// image's arithmetic is the same whatever the grouping.
extern "C" int64_t pixelrnn_integer_run(const int64_t* program, int64_t count, int64_t batch, int64_t i, int64_t j_begin,
                                        int64_t j_end, int64_t j_step, const int64_t* tables, double relu_max, int64_t threads) {
    const Context ctx{relu_max, reinterpret_cast<const double*>(tables[0]), reinterpret_cast<const double*>(tables[1]),
                      reinterpret_cast<const double*>(tables[2]), tables[3], tables[4]};
    const Instruction* instructions = reinterpret_cast<const Instruction*>(program);
    const int64_t groups = std::max<int64_t>(1, std::min(threads, batch / (4 * LANES)));  // at least 4 vectors a group
#ifdef _OPENMP
    if (groups > 1) {
        const int64_t size = (batch + groups * LANES - 1) / (groups * LANES) * LANES;
#pragma omp parallel for num_threads(groups) schedule(static)
        for (int64_t group = 0; group < groups; ++group) {
            const int64_t first = group * size, images = std::min(size, batch - first);
            if (images > 0) run_images(instructions, count, ctx, images, first, i, j_begin, j_end, j_step);
        }
        return 0;
    }
#endif
    run_images(instructions, count, ctx, batch, 0, i, j_begin, j_end, j_step);
    return 0;
}

// pixelrnn/codec/fixed_point.py integer_frequencies, row by row: (count, levels) int64 logits at
// row stride logits_stride -> (count, levels) float64 weights summing to 2^precision - levels
// exactly; precision and reciprocal_bits are that module's PRECISION and RECIPROCAL_BITS.
// Every value is an integer below 2^53, so the float64 steps are exact, as there.
extern "C" int64_t pixelrnn_integer_frequencies(const int64_t* logits, int64_t logits_stride, int64_t count, int64_t levels,
                                                const double* exp_table, int64_t table_length, int64_t precision,
                                                int64_t reciprocal_bits, double* out) {
    const int64_t free = (int64_t(1) << precision) - levels;
    for (int64_t n = 0; n < count; ++n) {
        const int64_t* row = logits + n * logits_stride;
        double* weights = out + n * levels;
        int64_t best = 0;
        for (int64_t k = 1; k < levels; ++k)
            if (row[k] > row[best]) best = k;  // the first most likely symbol
        int64_t total = 0;
        for (int64_t k = 0; k < levels; ++k) {
            weights[k] = exp_table[std::min(row[best] - row[k], table_length - 1)];
            total += static_cast<int64_t>(weights[k]);
        }
        const double reciprocal = static_cast<double>((free << reciprocal_bits) / total) * (1.0 / double(int64_t(1) << reciprocal_bits));
        double sum = 0.0;
        for (int64_t k = 0; k < levels; ++k) {
            weights[k] = std::floor(weights[k] * reciprocal);
            sum += weights[k];
        }
        weights[best] += static_cast<double>(free) - sum;
    }
    return 0;
}
