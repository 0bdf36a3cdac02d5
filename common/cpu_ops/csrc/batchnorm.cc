// Training-mode BatchNorm, alone or followed by ReLU, forward and gradient, for MindSpore's CPU backend
// (common/cpu_ops/batchnorm.py, epilogue.py).
//
// Per channel over M = N * H * W values (Ioffe & Szegedy 2015): y = relu(gamma * (x - mean) / sqrt(var + eps) + beta)
// with the biased batch variance; the running statistics get the unbiased one, updated in place as MindSpore's
// BatchNorm does: running = keep * running + (1 - keep) * batch. The residual variant adds the block's shortcut
// before the ReLU: y = relu(bn(x) + residual); the plain variant has no ReLU: y = bn(x).
//
// Both kernels give each thread whole channels (cpu_threads.h) and make two passes over a channel: one for its sums,
// one that writes the result. A channel's slices (N rows of H * W values per tensor, 100 KB at 8 x 56 x 56) stay in
// the core's L2 between the two passes, so every tensor crosses the memory bus once. The gradient fuses the ReLU's
// mask into BatchNorm's: MindSpore's ReluGrad + BatchNormGrad read and write 8 tensors to our 4 (5 with the residual's
// gradient), and its BatchNormGrad streams each twice (benchmarks/RESULTS.md round 5).
//
// AOT entry points (mindspore.ops.Custom, func_type "aot"; outputs last; hyper = [eps, keep]):
//   ZooBatchNormTrain / ZooBatchNormReLUTrain(x, gamma, beta, running_mean, running_var, hyper) -> y, mean, biased var
//   ZooBatchNormAddReLUTrain(x, residual, gamma, beta, running_mean, running_var, hyper) -> y, mean, biased var
//   ZooBatchNormGrad / ZooBatchNormReLUGrad(dy, x, y, gamma, mean, biased var, hyper) -> dx, dgamma, dbeta
//   ZooBatchNormAddReLUGrad(dy, x, y, gamma, mean, biased var, hyper) -> dx, d_residual, dgamma, dbeta
// (the plain gradient ignores y: without a ReLU there is no mask), and the epilogue of a conv with its BN folded:
//   ZooBiasReLU(x, bias) -> relu(x + bias)    ZooBiasAddReLU(x, bias, residual) -> relu(x + bias + residual)
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <mutex>

#include "cpu_threads.h"

namespace {

enum Act { kNone, kReLU, kAddReLU };  // y = bn(x), relu(bn(x)), relu(bn(x) + residual)

// An NCHW tensor seen as C channels of N rows of H * W values.
struct Layout {
  int64_t n, c, hw;
  int64_t row(int64_t image, int64_t channel) const { return (image * c + channel) * hw; }
};

bool same_4d(int i, int j, const int *ndims, int64_t **shapes) {
  return ndims[i] == 4 && ndims[j] == 4 && std::equal(shapes[i], shapes[i] + 4, shapes[j]);
}

// Whether the parameters at `indices` are vectors of C values (C = channels of parameter 0).
bool per_channel(std::initializer_list<int> indices, const int *ndims, int64_t **shapes) {
  return std::all_of(indices.begin(), indices.end(),
                     [&](int i) { return ndims[i] == 1 && shapes[i][0] == shapes[0][1]; });
}

// params: x, [residual,] gamma, beta, running_mean, running_var, hyper -> y, mean, var
int train(Act act, int nparam, void **p, int *ndims, int64_t **shapes, const char **dtypes) {
  const bool with_residual = act == kAddReLU;
  const int off = with_residual ? 1 : 0;  // parameters after the residual shift by one
  if (nparam != 9 + off || !zoo::all_float32(nparam, dtypes) || !same_4d(6 + off, 0, ndims, shapes) ||
      (with_residual && !same_4d(1, 0, ndims, shapes)) || ndims[5 + off] != 1 || shapes[5 + off][0] != 2 ||
      !per_channel({1 + off, 2 + off, 3 + off, 4 + off, 7 + off, 8 + off}, ndims, shapes))
    return 1;
  const Layout s{shapes[0][0], shapes[0][1], shapes[0][2] * shapes[0][3]};
  float *const *t = reinterpret_cast<float *const *>(p);
  const float *x = t[0], *residual = with_residual ? t[1] : nullptr, *gamma = t[1 + off], *beta = t[2 + off];
  float *running_mean = t[3 + off], *running_var = t[4 + off];
  float *y = t[6 + off], *mean = t[7 + off], *batch_var = t[8 + off];
  const float eps = t[5 + off][0], keep = t[5 + off][1];
  const int64_t m = s.n * s.hw;
  std::lock_guard<std::mutex> lock(zoo::op_mutex());
  zoo::parallel_ranges(s.c, [&](int, int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      // shift = the channel's first value keeps E[d^2] - E[d]^2 exact when the mean is large against the spread
      const float shift = x[s.row(0, c)];
      double sum = 0.0, sum_sq = 0.0;
      for (int64_t n = 0; n < s.n; ++n) {
        const float *row = x + s.row(n, c);
        float a = 0.f, b = 0.f;
#pragma omp simd reduction(+ : a, b)
        for (int64_t i = 0; i < s.hw; ++i) {
          const float d = row[i] - shift;
          a += d;
          b += d * d;
        }
        sum += a;
        sum_sq += b;
      }
      const double shifted = sum / m;
      const double var = std::max(0.0, sum_sq / m - shifted * shifted);
      mean[c] = static_cast<float>(shift + shifted);
      batch_var[c] = static_cast<float>(var);
      const float scale = static_cast<float>(gamma[c] / std::sqrt(var + eps));
      const float bias = beta[c] - mean[c] * scale;
      const double unbiased = m > 1 ? var * m / (m - 1) : var;
      running_mean[c] = keep * running_mean[c] + (1.f - keep) * mean[c];
      running_var[c] = static_cast<float>(keep * running_var[c] + (1.f - keep) * unbiased);
      for (int64_t n = 0; n < s.n; ++n) {
        const int64_t at = s.row(n, c);
        const float *row = x + at;
        float *out = y + at;
        if (act == kAddReLU) {
          const float *res = residual + at;
#pragma omp simd
          for (int64_t i = 0; i < s.hw; ++i) out[i] = std::max(row[i] * scale + bias + res[i], 0.f);
        } else if (act == kReLU) {
#pragma omp simd
          for (int64_t i = 0; i < s.hw; ++i) out[i] = std::max(row[i] * scale + bias, 0.f);
        } else {
#pragma omp simd
          for (int64_t i = 0; i < s.hw; ++i) out[i] = row[i] * scale + bias;
        }
      }
    }
  });
  return 0;
}

// The gradient through the ReLU: dy where y > 0, else 0 (dy itself without a ReLU, y then never read). dy is loaded
// first so that the choice is a select and the loops vectorize.
template <bool kReLUMask>
inline float through_relu(const float *dy, const float *y, int64_t i) {
  const float g = dy[i];
  return kReLUMask ? (y[i] > 0.f ? g : 0.f) : g;
}

// One thread's channels [c0, c1) of the gradient below.
template <bool kReLUMask>
void grad_channels(const Layout &s, int64_t c0, int64_t c1, float *const *t, float eps, float *d_residual,
                   float *dgamma, float *dbeta) {
  const float *dy = t[0], *x = t[1], *y = t[2], *gamma = t[3], *mean = t[4], *var = t[5];
  float *dx = t[7];
  const int64_t m = s.n * s.hw;
  for (int64_t c = c0; c < c1; ++c) {
    const float mu = mean[c];
    double sum_dz = 0.0, sum_dz_xc = 0.0;
    for (int64_t n = 0; n < s.n; ++n) {
      const int64_t at = s.row(n, c);
      const float *g = dy + at, *xr = x + at, *yr = y + at;
      float a = 0.f, b = 0.f;
      if (d_residual != nullptr) {
        float *dzr = d_residual + at;
#pragma omp simd reduction(+ : a, b)
        for (int64_t i = 0; i < s.hw; ++i) {
          const float dz = through_relu<kReLUMask>(g, yr, i);
          dzr[i] = dz;
          a += dz;
          b += dz * (xr[i] - mu);
        }
      } else {
#pragma omp simd reduction(+ : a, b)
        for (int64_t i = 0; i < s.hw; ++i) {
          const float dz = through_relu<kReLUMask>(g, yr, i);
          a += dz;
          b += dz * (xr[i] - mu);
        }
      }
      sum_dz += a;
      sum_dz_xc += b;
    }
    const double inv = 1.0 / std::sqrt(static_cast<double>(var[c]) + eps), k = gamma[c] * inv;
    dbeta[c] = static_cast<float>(sum_dz);
    dgamma[c] = static_cast<float>(sum_dz_xc * inv);
    const float k_dz = static_cast<float>(k), k_xc = static_cast<float>(-k * inv * inv * sum_dz_xc / m);
    const float k_0 = static_cast<float>(-k * sum_dz / m);
    for (int64_t n = 0; n < s.n; ++n) {
      const int64_t at = s.row(n, c);
      const float *g = dy + at, *xr = x + at, *yr = y + at;
      float *out = dx + at;
#pragma omp simd
      for (int64_t i = 0; i < s.hw; ++i) out[i] = through_relu<kReLUMask>(g, yr, i) * k_dz + (xr[i] - mu) * k_xc + k_0;
    }
  }
}

// params: dy, x, y, gamma, mean, biased var, hyper -> dx, [d_residual,] dgamma, dbeta: the ReLU's gradient (written
// out as the residual's gradient), then BatchNorm's training gradient
//   dx = gamma / sigma * (dz - mean(dz) - (x - mu) / sigma^2 * mean(dz * (x - mu))),  sigma = sqrt(var + eps).
int grad(Act act, int nparam, void **p, int *ndims, int64_t **shapes, const char **dtypes) {
  const bool with_residual = act == kAddReLU;
  const int outputs = with_residual ? 4 : 3;
  if (nparam != 7 + outputs || !zoo::all_float32(nparam, dtypes) || !same_4d(1, 0, ndims, shapes) ||
      !same_4d(2, 0, ndims, shapes) || !same_4d(7, 0, ndims, shapes) ||
      (with_residual && !same_4d(8, 0, ndims, shapes)) || ndims[6] != 1 || shapes[6][0] != 2 ||
      !per_channel({3, 4, 5, nparam - 2, nparam - 1}, ndims, shapes))
    return 1;
  const Layout s{shapes[0][0], shapes[0][1], shapes[0][2] * shapes[0][3]};
  float *const *t = reinterpret_cast<float *const *>(p);
  const float eps = t[6][0];
  float *d_residual = with_residual ? t[8] : nullptr, *dgamma = t[nparam - 2], *dbeta = t[nparam - 1];
  std::lock_guard<std::mutex> lock(zoo::op_mutex());
  zoo::parallel_ranges(s.c, [&](int, int64_t c0, int64_t c1) {
    if (act == kNone) grad_channels<false>(s, c0, c1, t, eps, d_residual, dgamma, dbeta);
    else grad_channels<true>(s, c0, c1, t, eps, d_residual, dgamma, dbeta);
  });
  return 0;
}

// The inference epilogue of a conv whose BN common/models/bn_fold.py folded into it:
// y = relu(x + bias [+ residual]), one pass where MindSpore runs BiasAdd, [Add,] ReLU. params: x, bias, [residual] -> y.
int bias_relu(bool with_residual, int nparam, void **p, int *ndims, int64_t **shapes, const char **dtypes) {
  const int out = with_residual ? 3 : 2;
  if (nparam != out + 1 || !zoo::all_float32(nparam, dtypes) || !same_4d(out, 0, ndims, shapes) ||
      (with_residual && !same_4d(2, 0, ndims, shapes)) || !per_channel({1}, ndims, shapes))
    return 1;
  const Layout s{shapes[0][0], shapes[0][1], shapes[0][2] * shapes[0][3]};
  float *const *t = reinterpret_cast<float *const *>(p);
  const float *x = t[0], *bias = t[1], *residual = with_residual ? t[2] : nullptr;
  float *y = t[out];
  std::lock_guard<std::mutex> lock(zoo::op_mutex());
  zoo::parallel_ranges(s.n * s.c, [&](int, int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float b = bias[r % s.c];
      const float *row = x + r * s.hw;
      float *dst = y + r * s.hw;
      if (residual != nullptr) {
        const float *res = residual + r * s.hw;
#pragma omp simd
        for (int64_t i = 0; i < s.hw; ++i) dst[i] = std::max(row[i] + b + res[i], 0.f);
      } else {
#pragma omp simd
        for (int64_t i = 0; i < s.hw; ++i) dst[i] = std::max(row[i] + b, 0.f);
      }
    }
  });
  return 0;
}

}  // namespace

// The three kinds (plain, + ReLU, + residual add + ReLU) of one pass: ZooBatchNorm{,ReLU,AddReLU}<pass>.
#define ZOO_BN_ENTRIES(pass, fn)                                     \
  ZOO_AOT_ENTRY(ZooBatchNorm##pass, fn(kNone, n, p, d, s, t))        \
  ZOO_AOT_ENTRY(ZooBatchNormReLU##pass, fn(kReLU, n, p, d, s, t))    \
  ZOO_AOT_ENTRY(ZooBatchNormAddReLU##pass, fn(kAddReLU, n, p, d, s, t))

extern "C" {
ZOO_BN_ENTRIES(Train, train)
ZOO_BN_ENTRIES(Grad, grad)
ZOO_AOT_ENTRY(ZooBiasReLU, bias_relu(false, n, p, d, s, t))
ZOO_AOT_ENTRY(ZooBiasAddReLU, bias_relu(true, n, p, d, s, t))
}
