// ResNeSt's radix-2 split attention around its MLP (common/cpu_ops/split_attention.py), for MindSpore's CPU
// backend. The
// split-attention conv gives x = (x0, x1), two halves of C channels each; the block needs
//   gap = mean over H, W of (x0 + x1)          (the MLP's input, N x C)
//   out = x1 + (x0 - x1) * w                   (w: the MLP's softmax weight of x0, N x C, broadcast over H, W)
// Written with MindSpore's CPU operators these take two StridedSlices, Add, ReduceMean, Sub, Mul, Add forward and
// StridedSliceGrad, Tile, ReduceSum, Mul, AddN backward, each a pass over the maps (~180 ms of a ResNeSt-50 step at
// bs 8/224, benchmarks/RESULTS.md round 5); here each direction of each is one pass.
//
// AOT entry points (mindspore.ops.Custom, func_type "aot"; outputs last), float32 NCHW:
//   ZooRadixGap(x) -> gap                      ZooRadixGapGrad(dgap, x) -> dx   (x for its shape only)
//   ZooRadixCombine(x, w) -> out               ZooRadixCombineGrad(dout, x, w) -> dx, dw
#include <algorithm>
#include <cstdint>
#include <mutex>

#include "cpu_threads.h"

namespace {

// x: (n, 2c, h, w); per-row tensors (gap, w): (n, c, 1, 1); maps (out): (n, c, h, w).
struct Halves {
  int64_t n, c, hw;
  template <typename T>
  T *x0(T *x, int64_t row) const { return x + ((row / c) * 2 * c + row % c) * hw; }
  template <typename T>
  T *x1(T *x, int64_t row) const { return x0(x, row) + c * hw; }
};

bool read_halves(const int64_t *x, const int64_t *rows, int rows_ndim, Halves *h) {
  if (x[1] % 2 != 0 || rows_ndim != 4 || rows[0] != x[0] || rows[1] != x[1] / 2 || rows[2] != 1 || rows[3] != 1)
    return false;
  *h = Halves{x[0], x[1] / 2, x[2] * x[3]};
  return true;
}

bool same_map(const Halves &h, int ndim, const int64_t *shape, const int64_t *x) {
  return ndim == 4 && shape[0] == h.n && shape[1] == h.c && shape[2] == x[2] && shape[3] == x[3];
}

template <typename RowFn>
int rows(const Halves &h, RowFn fn) {
  std::lock_guard<std::mutex> lock(zoo::op_mutex());
  zoo::parallel_ranges(h.n * h.c, [&](int, int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) fn(r);
  });
  return 0;
}

// x -> gap
int gap(int nparam, void **p, int *ndims, int64_t **shapes, const char **dtypes) {
  Halves h;
  if (nparam != 2 || !zoo::all_float32(2, dtypes) || ndims[0] != 4 || !read_halves(shapes[0], shapes[1], ndims[1], &h))
    return 1;
  const float *x = static_cast<const float *>(p[0]);
  float *out = static_cast<float *>(p[1]);
  return rows(h, [&](int64_t r) {
    const float *a = h.x0(x, r), *b = h.x1(x, r);
    float sum = 0.f;
#pragma omp simd reduction(+ : sum)
    for (int64_t i = 0; i < h.hw; ++i) sum += a[i] + b[i];
    out[r] = sum / static_cast<float>(h.hw);
  });
}

// dgap, x -> dx
int gap_grad(int nparam, void **p, int *ndims, int64_t **shapes, const char **dtypes) {
  Halves h;
  if (nparam != 3 || !zoo::all_float32(3, dtypes) || ndims[1] != 4 || ndims[2] != 4 ||
      !std::equal(shapes[1], shapes[1] + 4, shapes[2]) || !read_halves(shapes[1], shapes[0], ndims[0], &h))
    return 1;
  const float *dgap = static_cast<const float *>(p[0]);
  float *dx = static_cast<float *>(p[2]);
  return rows(h, [&](int64_t r) {
    float *a = h.x0(dx, r), *b = h.x1(dx, r);
    const float v = dgap[r] / static_cast<float>(h.hw);
    std::fill(a, a + h.hw, v);
    std::fill(b, b + h.hw, v);
  });
}

// x, w -> out
int combine(int nparam, void **p, int *ndims, int64_t **shapes, const char **dtypes) {
  Halves h;
  if (nparam != 3 || !zoo::all_float32(3, dtypes) || ndims[0] != 4 ||
      !read_halves(shapes[0], shapes[1], ndims[1], &h) || !same_map(h, ndims[2], shapes[2], shapes[0]))
    return 1;
  const float *x = static_cast<const float *>(p[0]), *w = static_cast<const float *>(p[1]);
  float *out = static_cast<float *>(p[2]);
  return rows(h, [&](int64_t r) {
    const float *a = h.x0(x, r), *b = h.x1(x, r);
    const float k = w[r];
    float *o = out + r * h.hw;
#pragma omp simd
    for (int64_t i = 0; i < h.hw; ++i) o[i] = b[i] + (a[i] - b[i]) * k;
  });
}

// dout, x, w -> dx, dw
int combine_grad(int nparam, void **p, int *ndims, int64_t **shapes, const char **dtypes) {
  Halves h;
  if (nparam != 5 || !zoo::all_float32(5, dtypes) || ndims[1] != 4 || ndims[3] != 4 ||
      !std::equal(shapes[1], shapes[1] + 4, shapes[3]) || !read_halves(shapes[1], shapes[2], ndims[2], &h) ||
      !read_halves(shapes[1], shapes[4], ndims[4], &h) || !same_map(h, ndims[0], shapes[0], shapes[1]))
    return 1;
  const float *dout = static_cast<const float *>(p[0]), *x = static_cast<const float *>(p[1]);
  const float *w = static_cast<const float *>(p[2]);
  float *dx = static_cast<float *>(p[3]), *dw = static_cast<float *>(p[4]);
  return rows(h, [&](int64_t r) {
    const float *a = h.x0(x, r), *b = h.x1(x, r), *g = dout + r * h.hw;
    float *da = h.x0(dx, r), *db = h.x1(dx, r);
    const float k = w[r];
    float sum = 0.f;
#pragma omp simd reduction(+ : sum)
    for (int64_t i = 0; i < h.hw; ++i) {
      sum += g[i] * (a[i] - b[i]);
      da[i] = g[i] * k;
      db[i] = g[i] - g[i] * k;
    }
    dw[r] = sum;
  });
}

}  // namespace

extern "C" {
ZOO_AOT_ENTRY(ZooRadixGap, gap(n, p, d, s, t))
ZOO_AOT_ENTRY(ZooRadixGapGrad, gap_grad(n, p, d, s, t))
ZOO_AOT_ENTRY(ZooRadixCombine, combine(n, p, d, s, t))
ZOO_AOT_ENTRY(ZooRadixCombineGrad, combine_grad(n, p, d, s, t))
}
