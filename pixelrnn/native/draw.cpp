// Sampling (section 2): one categorical draw per row of logits by the inverse CDF, and a whole
// image row drawn sub-pixel by sub-pixel in one call.
//
// The same computation as the PyTorch path of pixelrnn.sampling.generation.sample_categorical:
// softmax(logits / T) in double precision, its running sum, and the number of entries below the
// row's uniform (at most K - 1). exp is this library's (vector_math.h, within 2 ulp of the true
// value), so a draw can differ from the PyTorch path's only when the uniform falls within a few
// ulp of a boundary of the running sum.
#include <cstdint>
#include <vector>

#include "dense.h"
#include "vector_math.h"

using pixelrnn::at_address;

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

// The programs of program.cpp, by element type.
extern "C" int64_t pixelrnn_run_f32(const int64_t*, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t);
extern "C" int64_t pixelrnn_run_f64(const int64_t*, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t);
template <typename T>
void run_at(const int64_t* program, int64_t count, int64_t batch, int64_t i, int64_t j) {
    if (count == 0) return;
    if constexpr (sizeof(T) == 4) pixelrnn_run_f32(program, count, batch, i, j, j + 1, 1);
    else pixelrnn_run_f64(program, count, batch, i, j, j + 1, 1);
}

// Row i of a batch, every sub-pixel unknown: per column and channel c, the features and the head of
// colour group c (programs: per group, the features' address and count, then the head's), the draw
// with the next uniform, the value into the images (int64, pointing at (0, 0, i, 0)) and its scaled
// value into the input cache (pointing at (0, i + top, side, 0)).
template <typename T>
void sample_row(const int64_t* programs, int64_t channels, int64_t batch, int64_t i, int64_t width, int64_t levels,
                const T* logits, int64_t logits_stride, const double* uniforms, double temperature, int64_t* images,
                int64_t image_batch, int64_t image_channel, int64_t image_column, const T* table, T* cache,
                int64_t cache_batch, int64_t cache_column) {
    for (int64_t j = 0; j < width; ++j) {
        for (int64_t c = 0; c < channels; ++c) {
            const int64_t* group = programs + 4 * c;
            run_at<T>(reinterpret_cast<const int64_t*>(group[0]), group[1], batch, i, j);
            run_at<T>(reinterpret_cast<const int64_t*>(group[2]), group[3], batch, i, j);
            int64_t* out = images + c * image_channel + j * image_column;
            draw<T>(logits + c * levels, logits_stride, levels, batch, uniforms + (j * channels + c) * batch, temperature, out,
                    image_batch);
            T* slot = cache + j * cache_column + c;
            for (int64_t b = 0; b < batch; ++b) slot[b * cache_batch] = table[out[b * image_batch]];
        }
    }
}

}  // namespace

#define PIXELRNN_DRAWS(T, SUFFIX)                                                                                                \
    extern "C" int64_t pixelrnn_sample_row_##SUFFIX(int64_t programs, int64_t channels, int64_t batch, int64_t i,                \
                                                    int64_t width, int64_t levels, int64_t logits, int64_t logits_stride,        \
                                                    int64_t uniforms, double temperature, int64_t images, int64_t image_batch,   \
                                                    int64_t image_channel, int64_t image_column, int64_t table, int64_t cache,   \
                                                    int64_t cache_batch, int64_t cache_column) {                                 \
        sample_row<T>(at_address<const int64_t>(programs), channels, batch, i, width, levels, at_address<const T>(logits), logits_stride, \
                      at_address<const double>(uniforms), temperature, at_address<int64_t>(images), image_batch, image_channel, image_column, \
                      at_address<const T>(table), at_address<T>(cache), cache_batch, cache_column);                              \
        return 0;                                                                                                                \
    }                                                                                                                            \
    extern "C" int64_t pixelrnn_draw_##SUFFIX(int64_t logits, int64_t batch_stride, int64_t levels, int64_t batch,               \
                                              int64_t uniforms, double temperature, int64_t out, int64_t out_stride) {           \
        draw<T>(at_address<const T>(logits), batch_stride, levels, batch, at_address<const double>(uniforms), temperature, at_address<int64_t>(out), \
                out_stride);                                                                                                     \
        return 0;                                                                                                                \
    }

PIXELRNN_DRAWS(float, f32)
PIXELRNN_DRAWS(double, f64)
