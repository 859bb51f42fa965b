// The LSTM's activations for the native kernels, written so that the compiler vectorises the loops
// that call them: no branches and no calls into libm, whose scalar exp would cost more than the
// matrix products at the sizes of the paper's MNIST networks.
//
// exp(x) = 2^n * exp(r), n = round(x / ln 2), r = x - n ln 2 in [-ln2/2, ln2/2] (ln 2 split in two
// parts so that r is exact), exp(r) by its Taylor series up to r^7 (float) or r^13 (double): the
// truncation error is below half an ulp there, so the result is within about 2 ulp of exp(x).
// x is clamped so that 2^n stays a normal number; sigmoid and tanh need nothing beyond that range
// (sigmoid(-88) is 6e-39 in float, tanh(x) is 1 to double precision from |x| = 19 on).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

namespace pixelrnn {

// 1/k! for k < 16, computed by the compiler.
struct InverseFactorials {
    double values[16];
    constexpr InverseFactorials() : values() {
        double value = 1.0;
        for (int k = 0; k < 16; ++k) {
            if (k > 1) value /= k;
            values[k] = value;
        }
    }
};
constexpr InverseFactorials inverse_factorials{};

template <typename T> struct FloatTraits;
template <> struct FloatTraits<float> {
    using Int = int32_t;
    static constexpr int mantissa = 23, bias = 127, terms = 8;
    static constexpr float low = -87.0f, high = 88.0f;
};
template <> struct FloatTraits<double> {
    using Int = int64_t;
    static constexpr int mantissa = 52, bias = 1023, terms = 14;
    static constexpr double low = -708.0, high = 709.0;
};

// sum_{k < terms} r^k / k! by Horner's rule, unrolled by the compiler (no loop left to vectorise around).
template <typename T, int k, int terms>
inline T horner(T r) {
    if constexpr (k == terms - 1) {
        return T(inverse_factorials.values[k]);
    } else {
        return horner<T, k + 1, terms>(r) * r + T(inverse_factorials.values[k]);
    }
}

template <typename T>
inline T exp_(T x) {
    using F = FloatTraits<T>;
    x = std::min(std::max(x, T(F::low)), T(F::high));
    // Round to nearest by adding and removing 1.5 * 2^mantissa: no branch, no call, vectorises.
    const T magic = T(1.5) * T(typename F::Int(1) << F::mantissa);
    const T n = (x * T(1.4426950408889634) + magic) - magic;
    const T r = (x - n * T(0.693145751953125)) - n * T(1.4286068203094172321e-06);
    const T p = horner<T, 0, F::terms>(r);
    const typename F::Int bits = (static_cast<typename F::Int>(n) + F::bias) << F::mantissa;
    T scale;
    std::memcpy(&scale, &bits, sizeof(T));
    return p * scale;
}

template <typename T>
inline T sigmoid_(T x) {
    return T(1) / (T(1) + exp_(-x));
}

template <typename T>
inline T tanh_(T x) {
    // (1 - e) / (1 + e) with e = exp(-2|x|) <= 1: no overflow; the sign restored after.
    const T e = exp_(T(-2) * std::fabs(x));
    return std::copysign((T(1) - e) / (T(1) + e), x);
}

}  // namespace pixelrnn
