// Training-mode BatchNorm followed by ReLU, forward only, for MindSpore's CPU backend (common/fused_bn.py): one pass
// over the NCHW float32 input for the batch statistics and one for the output, streaming the tensors in memory order
// with per-thread partial sums (cpu_threads.h). The gradient stays MindSpore's own ReluGrad + BatchNormGrad, which
// take the batch mean and biased variance this kernel returns.
//
// Per channel over M = N * H * W values (Ioffe & Szegedy 2015): y = relu(gamma * (x - mean) / sqrt(var + eps) + beta)
// with the biased batch variance; the running statistics get the unbiased one, updated in place as MindSpore's
// BatchNorm does: running = keep * running + (1 - keep) * batch.
//
// The residual variant adds the block's shortcut before the ReLU: y = relu(bn(x) + residual).
//
// AOT entry points (mindspore.ops.Custom, func_type "aot"; outputs last):
//   ZooBatchNormReLUTrain(x, gamma, beta, running_mean, running_var, hyper = [eps, keep]) -> y, mean, biased var
//   ZooBatchNormAddReLUTrain(x, residual, gamma, beta, running_mean, running_var, hyper) -> y, mean, biased var
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <vector>

#include "cpu_threads.h"

namespace {

struct Layout {
  int64_t n, c, hw;
};

// sums[part][0 or 1][c], accumulated over the rows (image, channel) of each part.
using Partials = std::vector<std::vector<double>>;

template <typename RowFn>
Partials channel_sums(const Layout &s, RowFn row_sums) {
  Partials sums(zoo::team_size(), std::vector<double>(2 * s.c, 0.0));  // parallel_ranges uses at most this many parts
  zoo::parallel_ranges(s.n * s.c, [&](int part, int64_t r0, int64_t r1) {
    double *acc = sums[part].data();
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t c = r % s.c;
      float a = 0.f, b = 0.f;
      row_sums(r, c, &a, &b);
      acc[c] += a;
      acc[s.c + c] += b;
    }
  });
  for (size_t p = 1; p < sums.size(); ++p)
    for (int64_t i = 0; i < 2 * s.c; ++i) sums[0][i] += sums[p][i];
  return sums;
}

// params: x, [residual,] gamma, beta, running_mean, running_var, hyper -> y, mean, var
int train(bool with_residual, int nparam, void **p, int *ndims, int64_t **shapes, const char **dtypes) {
  const int off = with_residual ? 1 : 0;  // parameters after the residual shift by one
  if (nparam != 9 + off || !zoo::all_float32(nparam, dtypes) || ndims[0] != 4 || ndims[6 + off] != 4 ||
      ndims[5 + off] != 1 || shapes[5 + off][0] != 2)
    return 1;
  if (with_residual && (ndims[1] != 4 || !std::equal(shapes[1], shapes[1] + 4, shapes[0]))) return 1;
  if (!std::equal(shapes[6 + off], shapes[6 + off] + 4, shapes[0])) return 1;
  for (int i : {1 + off, 2 + off, 3 + off, 4 + off, 7 + off, 8 + off}) {  // per-channel tensors hold C values
    if (ndims[i] != 1 || shapes[i][0] != shapes[0][1]) return 1;
  }
  const Layout s{shapes[0][0], shapes[0][1], shapes[0][2] * shapes[0][3]};
  float *const *t = reinterpret_cast<float *const *>(p);
  const float *x = t[0], *residual = with_residual ? t[1] : nullptr, *gamma = t[1 + off], *beta = t[2 + off];
  float *running_mean = t[3 + off], *running_var = t[4 + off];
  float *y = t[6 + off], *mean = t[7 + off], *batch_var = t[8 + off];
  const float eps = t[5 + off][0], keep = t[5 + off][1];
  const int64_t m = s.n * s.hw;
  std::lock_guard<std::mutex> lock(zoo::op_mutex());
  // shift = the channel's first value keeps E[d^2] - E[d]^2 exact when the mean is large against the spread
  std::vector<float> shift(s.c), scale(s.c), bias(s.c);
  for (int64_t c = 0; c < s.c; ++c) shift[c] = x[c * s.hw];
  Partials sums = channel_sums(s, [&](int64_t r, int64_t c, float *a, float *b) {
    const float *row = x + r * s.hw;
    const float k = shift[c];
    float sa = 0.f, sb = 0.f;
#pragma omp simd reduction(+ : sa, sb)
    for (int64_t i = 0; i < s.hw; ++i) {
      const float d = row[i] - k;
      sa += d;
      sb += d * d;
    }
    *a = sa;
    *b = sb;
  });
  for (int64_t c = 0; c < s.c; ++c) {
    const double shifted = sums[0][c] / m;
    const double var = std::max(0.0, sums[0][s.c + c] / m - shifted * shifted);
    const double inv = 1.0 / std::sqrt(var + eps);
    mean[c] = static_cast<float>(shift[c] + shifted);
    batch_var[c] = static_cast<float>(var);
    scale[c] = static_cast<float>(gamma[c] * inv);
    bias[c] = beta[c] - mean[c] * scale[c];
    const double unbiased = m > 1 ? var * m / (m - 1) : var;
    running_mean[c] = keep * running_mean[c] + (1.f - keep) * mean[c];
    running_var[c] = static_cast<float>(keep * running_var[c] + (1.f - keep) * unbiased);
  }
  zoo::parallel_ranges(s.n * s.c, [&](int, int64_t r0, int64_t r1) {
    for (int64_t row_index = r0; row_index < r1; ++row_index) {
      const int64_t c = row_index % s.c;
      const float k = scale[c], b = bias[c];
      const float *row = x + row_index * s.hw;
      float *out = y + row_index * s.hw;
      if (residual != nullptr) {
        const float *res = residual + row_index * s.hw;
#pragma omp simd
        for (int64_t i = 0; i < s.hw; ++i) out[i] = std::max(row[i] * k + b + res[i], 0.f);
      } else {
#pragma omp simd
        for (int64_t i = 0; i < s.hw; ++i) out[i] = std::max(row[i] * k + b, 0.f);
      }
    }
  });
  return 0;
}

}  // namespace

extern "C" {
int ZooBatchNormReLUTrain(int n, void **p, int *d, int64_t **s, const char **t, void *, void *) {
  return train(false, n, p, d, s, t);
}
int ZooBatchNormAddReLUTrain(int n, void **p, int *d, int64_t **s, const char **t, void *, void *) {
  return train(true, n, p, d, s, t);
}
}
