// One LSTM position for the native kernels (equation 3 of the paper): gates [o | f | i | g] ->
// c = sigmoid(f) c_prev + sigmoid(i) tanh(g), h = sigmoid(o) tanh(c), and its backward pass.
//
// The activations are computed over contiguous arrays first, so that the loops calling exp
// vectorise; the states may be strided (the accessors).
#pragma once

#include <cstdint>

#include "vector_math.h"

namespace pixelrnn {

// activations (4n, written): [sigmoid(o) | sigmoid(f) | sigmoid(i) | tanh(g)]; tanh_cell (n, written).
// cell_prev(u) reads the previous cell; store(u, c, h) writes the new cell and hidden state.
template <typename T, typename CellPrev, typename Store>
inline void lstm_forward(int64_t n, const T* gates, T* activations, T* tanh_cell, CellPrev cell_prev, Store store) {
    // As in lstm_backward: unit u reads and writes index u only (activations may be gates itself),
    // which the compiler cannot prove through the accessors; told so, it vectorises the last loops.
#pragma GCC ivdep
    for (int64_t u = 0; u < 3 * n; ++u) activations[u] = sigmoid_(gates[u]);
#pragma GCC ivdep
    for (int64_t u = 3 * n; u < 4 * n; ++u) activations[u] = tanh_(gates[u]);
#pragma GCC ivdep
    for (int64_t u = 0; u < n; ++u) tanh_cell[u] = activations[n + u] * cell_prev(u) + activations[2 * n + u] * activations[3 * n + u];
#pragma GCC ivdep
    for (int64_t u = 0; u < n; ++u) {
        const T cell = tanh_cell[u];
        tanh_cell[u] = tanh_(cell);
        store(u, cell, activations[u] * tanh_cell[u]);
    }
}

// Back through lstm_forward at one position: from dL/dh (grad_hidden) and the dL/dc carried from
// the next step (grad_cell), writes dL/d(pre-activation gates) (4n) and returns, per unit through
// carry(u, value), the dL/dc_prev carried on (through the forget gate).
template <typename T, typename CellPrev, typename Carry>
inline void lstm_backward(int64_t n, const T* activations, const T* tanh_cell, const T* grad_hidden, const T* grad_cell,
                          CellPrev cell_prev, T* grad_gates, Carry carry) {
    // Unit u reads and writes index u of each array only (the callers' arrays do not overlap
    // across units), so the loop vectorises; without the pragma the compiler must assume aliasing.
#pragma GCC ivdep
    for (int64_t u = 0; u < n; ++u) {
        const T o = activations[u], f = activations[n + u], i = activations[2 * n + u], g = activations[3 * n + u];
        const T t = tanh_cell[u];
        const T dc = grad_cell[u] + grad_hidden[u] * o * (T(1) - t * t);
        grad_gates[u] = grad_hidden[u] * t * o * (T(1) - o);
        grad_gates[n + u] = dc * cell_prev(u) * f * (T(1) - f);
        grad_gates[2 * n + u] = dc * g * i * (T(1) - i);
        grad_gates[3 * n + u] = dc * i * (T(1) - g * g);
        carry(u, dc * f);
    }
}

}  // namespace pixelrnn
