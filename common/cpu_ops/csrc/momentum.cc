// SGD with momentum and weight decay, one pass over a parameter, for MindSpore's CPU backend
// (common/cpu_ops/momentum.py).
//
// nn.Momentum runs, per parameter, Mul + AddN for the weight decay and then ApplyMomentum: 3 kernels and 3 passes
// over the parameter's size, ~61 ms of a 112 px ResNeXt-50 training step (bs 8; 161 parameters, 54 decayed;
// benchmarks/RESULTS.md round 5). This kernel does the same arithmetic in one pass:
//   g = grad + weight_decay * param;  moment = momentum * moment + g
//   param -= lr * moment                     (or lr * (g + momentum * moment) with Nesterov)
//
// AOT entry point (mindspore.ops.Custom, func_type "aot"; output last):
//   ZooMomentumStep(param, moment, grad, lr, hyper = [weight_decay, momentum, nesterov]) -> done (1 value, 0)
// param and moment are updated in place (declared RW_WRITE to MindSpore, like ApplyMomentum's).
#include <algorithm>
#include <cstdint>
#include <mutex>

#include "cpu_threads.h"

namespace {

int64_t count(int ndim, const int64_t *shape) {
  int64_t n = 1;
  for (int i = 0; i < ndim; ++i) n *= shape[i];
  return n;
}

template <bool kNesterov>
void update(float *param, float *moment, const float *grad, int64_t begin, int64_t end, float lr, float decay,
            float momentum) {
#pragma omp simd
  for (int64_t i = begin; i < end; ++i) {
    const float g = param[i] * decay + grad[i];
    const float m = moment[i] * momentum + g;
    moment[i] = m;
    param[i] -= kNesterov ? lr * (g + m * momentum) : lr * m;
  }
}

int momentum_step(int nparam, void **p, int *ndims, int64_t **shapes, const char **dtypes) {
  if (nparam != 6 || !zoo::all_float32(nparam, dtypes)) return 1;
  for (int i : {1, 2}) {
    if (ndims[i] != ndims[0] || !std::equal(shapes[i], shapes[i] + ndims[i], shapes[0])) return 1;
  }
  if (count(ndims[3], shapes[3]) != 1 || count(ndims[4], shapes[4]) != 3 || count(ndims[5], shapes[5]) != 1) return 1;
  float *const *t = reinterpret_cast<float *const *>(p);
  float *param = t[0], *moment = t[1];
  const float *grad = t[2];
  const float lr = t[3][0], decay = t[4][0], momentum = t[4][1];
  const bool nesterov = t[4][2] != 0.f;
  const int64_t n = count(ndims[0], shapes[0]);
  auto run = [&](int, int64_t begin, int64_t end) {
    if (nesterov) update<true>(param, moment, grad, begin, end, lr, decay, momentum);
    else update<false>(param, moment, grad, begin, end, lr, decay, momentum);
  };
  constexpr int64_t kSplitAbove = 1 << 16;  // smaller ones cost less than waking the helper threads
  if (n <= kSplitAbove) {
    run(0, 0, n);
  } else {
    std::lock_guard<std::mutex> lock(zoo::op_mutex());
    zoo::parallel_ranges(n, run);
  }
  t[5][0] = 0.f;
  return 0;
}

}  // namespace

extern "C" {
ZOO_AOT_ENTRY(ZooMomentumStep, momentum_step(n, p, d, s, t))
}
