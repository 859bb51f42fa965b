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

#include <cstdint>
#include <cstring>

namespace pixelrnn {

constexpr double inverse_factorial_(int k) { return k <= 1 ? 1.0 : inverse_factorial_(k - 1) / k; }

template <typename T> struct FloatTraits;
template <> struct FloatTraits<float> {
    using Int = int32_t;
    static constexpr int mantissa = 23, bias = 127, terms = 8;
    static constexpr float low = -87.0f, high = 88.0f;
    static constexpr double inverse_factorial(int k) { return inverse_factorial_(k); }
};
template <> struct FloatTraits<double> {
    using Int = int64_t;
    static constexpr int mantissa = 52, bias = 1023, terms = 14;
    static constexpr double low = -708.0, high = 709.0;
    static constexpr double inverse_factorial(int k) { return inverse_factorial_(k); }
};

template <typename T>
inline T exp_(T x) {
    using F = FloatTraits<T>;
    x = x < F::low ? F::low : (x > F::high ? F::high : x);
    const T n = static_cast<T>(static_cast<typename F::Int>(x * T(1.4426950408889634) + (x < 0 ? T(-0.5) : T(0.5))));
    const T r = (x - n * T(0.693145751953125)) - n * T(1.4286068203094172321e-06);
    T p = T(F::inverse_factorial(F::terms - 1));
    for (int k = F::terms - 2; k >= 0; --k) p = p * r + T(F::inverse_factorial(k));  // Horner
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
    // (1 - e) / (1 + e) with e = exp(-2|x|) <= 1: no overflow, and the sign restored after.
    const T magnitude = x < 0 ? -x : x;
    const T e = exp_(T(-2) * magnitude);
    const T t = (T(1) - e) / (T(1) + e);
    return x < 0 ? -t : t;
}

}  // namespace pixelrnn
