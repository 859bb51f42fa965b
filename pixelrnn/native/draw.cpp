// One categorical draw per row of logits by the inverse CDF: the sampling loop's step (section 2).
//
// The same computation as the PyTorch path of pixelrnn.sampling.generation.sample_categorical:
// softmax(logits / T) in double precision, its running sum, and the number of entries below the
// row's uniform (at most K - 1). exp is this library's (vector_math.h, within 2 ulp of the true
// value), so a draw can differ from the PyTorch path's only when the uniform falls within a few
// ulp of a boundary of the running sum.
#include <cstdint>
#include <vector>

#include "vector_math.h"

namespace {

template <typename T>
void draw(const T* logits, int64_t batch_stride, int64_t levels, int64_t batch, const double* uniforms, double temperature,
          int64_t* out, int64_t out_stride) {
    std::vector<double> probabilities(levels);
    for (int64_t b = 0; b < batch; ++b) {
        const T* row = logits + b * batch_stride;
        double largest = double(row[0]) / temperature;
        for (int64_t k = 1; k < levels; ++k) largest = std::max(largest, double(row[k]) / temperature);
        double total = 0.0;
        for (int64_t k = 0; k < levels; ++k) {
            probabilities[k] = pixelrnn::exp_(double(row[k]) / temperature - largest);
            total += probabilities[k];
        }
        const double uniform = uniforms[b];
        double cumulative = 0.0;
        int64_t below = 0;
        for (int64_t k = 0; k < levels; ++k) {
            cumulative += probabilities[k] / total;
            below += cumulative < uniform;
        }
        out[b * out_stride] = below < levels - 1 ? below : levels - 1;
    }
}

}  // namespace

extern "C" int64_t pixelrnn_draw_f32(int64_t logits, int64_t batch_stride, int64_t levels, int64_t batch, int64_t uniforms,
                                     double temperature, int64_t out, int64_t out_stride) {
    draw<float>(reinterpret_cast<const float*>(logits), batch_stride, levels, batch, reinterpret_cast<const double*>(uniforms),
                temperature, reinterpret_cast<int64_t*>(out), out_stride);
    return 0;
}

extern "C" int64_t pixelrnn_draw_f64(int64_t logits, int64_t batch_stride, int64_t levels, int64_t batch, int64_t uniforms,
                                     double temperature, int64_t out, int64_t out_stride) {
    draw<double>(reinterpret_cast<const double*>(logits), batch_stride, levels, batch, reinterpret_cast<const double*>(uniforms),
                 temperature, reinterpret_cast<int64_t*>(out), out_stride);
    return 0;
}
