// Convolution forward, input gradient and weight gradient for MindSpore's CPU backend through oneDNN 3.x.
//
// Why: MindSpore 2.8's CPU convolutions are oneDNN 2.2 `gemm:jit` kernels on plain NCHW memory; oneDNN 3.x runs
// `jit:avx512_core` direct kernels on blocked memory, 2-4x faster for ResNeXt's grouped 3x3 convs
// (benchmarks/RESULTS.md). Tensors stay NCHW / OIHW at the boundary: each call reorders into the layout the
// primitive picked and back, as PyTorch does with its NCHW tensors.
//
// Entry points follow MindSpore's AOT custom-op signature (mindspore.ops.Custom, func_type "aot"); the last
// parameter is the output:
//   ZooConvForward(x, w[, b]) -> y    ZooConvBackwardData(dy, w, x) -> dx    ZooConvBackwardWeights(dy, x, w) -> dw
// The backward ops take the forward's other input only for its shape (MindSpore infers an AOT op's output shape
// from its inputs). Geometry comes from the shapes alone, since the AOT interface passes attributes differently
// across MindSpore releases: groups = C_in / w.shape[1], padding = kernel / 2 (the backbone's only padding), stride
// the one of {1, 2} that maps the input size onto the output size. Float32 only; any mismatch returns non-zero,
// which MindSpore raises as an error. loader_shim.cc is the library MindSpore loads; it opens this one.
#include <omp.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "cpu_threads.h"
#include "oneapi/dnnl/dnnl.hpp"

namespace {

using dnnl::memory;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

enum Kind { kForward = 0, kBackwardData = 1, kBackwardWeights = 2 };

struct Geometry {
  int64_t n, c, h, w, o, kh, kw, oh, ow, groups, stride, pad_h, pad_w, bias;
};

int64_t out_size(int64_t in, int64_t k, int64_t pad, int64_t stride) { return (in + 2 * pad - k) / stride + 1; }

// x: (n, c, h, w), weight: (o, c / groups, kh, kw), y: (n, o, oh, ow).
bool make_geometry(const int64_t *x, const int64_t *wt, const int64_t *y, bool bias, Geometry *g) {
  if (wt[1] <= 0 || x[1] % wt[1] != 0) return false;
  *g = Geometry{x[0], x[1], x[2], x[3], wt[0], wt[2], wt[3], y[2], y[3], x[1] / wt[1], 0, wt[2] / 2, wt[3] / 2, bias};
  if (y[0] != x[0] || y[1] != wt[0] || g->o % g->groups != 0) return false;
  for (int64_t s = 1; s <= 2; ++s) {
    if (out_size(g->h, g->kh, g->pad_h, s) == g->oh && out_size(g->w, g->kw, g->pad_w, s) == g->ow) {
      g->stride = s;
      return true;
    }
  }
  return false;
}

dnnl::engine &cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// One argument of the primitive: the user's plain buffer and, when the primitive picked another layout, a buffer in
// that layout with the cached reorder between the two.
struct Slot {
  int arg = 0;
  memory::desc plain;
  bool needs_reorder = false;
  memory inner;
  dnnl::reorder reorder;  // plain -> inner for inputs, inner -> plain for the output
};

struct Plan {
  dnnl::primitive conv;
  Slot inputs[3];  // forward: src, weights[, bias]; backward data: diff_dst, weights; weights: diff_dst, src
  int num_inputs = 2;
  Slot output;     // forward: dst; backward data: diff_src; backward weights: diff_weights
  memory scratchpad;  // owned by the plan (scratchpad_mode::user): oneDNN's shared per-thread scratch crashed here
  std::vector<float> partial;  // weight gradient of a batch chunk other than the first
};

Slot make_slot(int arg, const memory::desc &plain, const memory::desc &inner, bool is_output) {
  Slot s;
  s.arg = arg;
  s.plain = plain;
  s.needs_reorder = (plain != inner);
  if (s.needs_reorder) {
    auto &eng = cpu_engine();
    s.inner = memory(inner, eng);
    memory plain_mem(plain, eng, nullptr);
    s.reorder = is_output ? dnnl::reorder(s.inner, plain_mem) : dnnl::reorder(plain_mem, s.inner);
  }
  return s;
}

// A backward plan: the primitive built from `pd`, its own scratchpad, two inputs and the output.
template <typename Primitive, typename PrimitiveDesc>
void set_backward_plan(Plan &plan, const PrimitiveDesc &pd, const Slot &in0, const Slot &in1, const Slot &out) {
  plan.conv = Primitive(pd);
  plan.scratchpad = memory(pd.scratchpad_desc(), cpu_engine());
  plan.inputs[0] = in0;
  plan.inputs[1] = in1;
  plan.output = out;
}

memory::dims weight_dims(const Geometry &g) {
  if (g.groups == 1) return {g.o, g.c, g.kh, g.kw};
  return {g.groups, g.o / g.groups, g.c / g.groups, g.kh, g.kw};  // same memory as MindSpore's (o, c/g, kh, kw)
}

Plan make_plan(Kind kind, const Geometry &g) {
  auto &eng = cpu_engine();
  const memory::desc src_any({g.n, g.c, g.h, g.w}, dt::f32, tag::any);
  const memory::desc dst_any({g.n, g.o, g.oh, g.ow}, dt::f32, tag::any);
  const memory::desc wei_any(weight_dims(g), dt::f32, tag::any);
  const memory::desc src_plain({g.n, g.c, g.h, g.w}, dt::f32, tag::nchw);
  const memory::desc dst_plain({g.n, g.o, g.oh, g.ow}, dt::f32, tag::nchw);
  const memory::desc wei_plain(weight_dims(g), dt::f32, g.groups == 1 ? tag::oihw : tag::goihw);
  const memory::desc bias_plain({g.o}, dt::f32, tag::a);
  const memory::dims strides = {g.stride, g.stride};
  const memory::dims pad_l = {g.pad_h, g.pad_w};
  const memory::dims pad_r = {(g.oh - 1) * g.stride + g.kh - g.h - g.pad_h,
                              (g.ow - 1) * g.stride + g.kw - g.w - g.pad_w};
  const auto algo = dnnl::algorithm::convolution_direct;
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  const auto fwd_pd =
      g.bias ? dnnl::convolution_forward::primitive_desc(eng, dnnl::prop_kind::forward_training, algo, src_any,
                                                         wei_any, bias_plain, dst_any, strides, pad_l, pad_r, attr)
             : dnnl::convolution_forward::primitive_desc(eng, dnnl::prop_kind::forward_training, algo, src_any,
                                                         wei_any, dst_any, strides, pad_l, pad_r, attr);
  Plan plan;
  if (kind == kForward) {
    plan.conv = dnnl::convolution_forward(fwd_pd);
    plan.scratchpad = memory(fwd_pd.scratchpad_desc(), eng);
    plan.inputs[0] = make_slot(DNNL_ARG_SRC, src_plain, fwd_pd.src_desc(), false);
    plan.inputs[1] = make_slot(DNNL_ARG_WEIGHTS, wei_plain, fwd_pd.weights_desc(), false);
    if (g.bias) plan.inputs[2] = make_slot(DNNL_ARG_BIAS, bias_plain, fwd_pd.bias_desc(), false);
    plan.num_inputs = g.bias ? 3 : 2;
    plan.output = make_slot(DNNL_ARG_DST, dst_plain, fwd_pd.dst_desc(), true);
  } else if (kind == kBackwardData) {
    const dnnl::convolution_backward_data::primitive_desc pd(eng, algo, src_any, wei_any, dst_any, strides, pad_l,
                                                             pad_r, fwd_pd, attr);
    set_backward_plan<dnnl::convolution_backward_data>(
        plan, pd, make_slot(DNNL_ARG_DIFF_DST, dst_plain, pd.diff_dst_desc(), false),
        make_slot(DNNL_ARG_WEIGHTS, wei_plain, pd.weights_desc(), false),
        make_slot(DNNL_ARG_DIFF_SRC, src_plain, pd.diff_src_desc(), true));
  } else {
    dnnl::convolution_backward_weights::primitive_desc pd(eng, algo, src_any, wei_any, dst_any, strides, pad_l, pad_r,
                                                          fwd_pd, attr);
    if (std::strstr(pd.impl_info_str(), "gemm") != nullptr) {
      // With 4 channels a group (ResNeXt 32x4d stage 1) the free choice is im2col + GEMM on plain memory, 3x slower
      // than the direct avx512 kernel oneDNN has for channels-last (measured 14.1 vs 4.8 ms at 8x128x56x56, g32).
      const memory::desc src_nhwc({g.n, g.c, g.h, g.w}, dt::f32, tag::nhwc);
      const memory::desc dst_nhwc({g.n, g.o, g.oh, g.ow}, dt::f32, tag::nhwc);
      pd = dnnl::convolution_backward_weights::primitive_desc(eng, algo, src_nhwc, wei_any, dst_nhwc, strides, pad_l,
                                                              pad_r, fwd_pd, attr);
    }
    set_backward_plan<dnnl::convolution_backward_weights>(
        plan, pd, make_slot(DNNL_ARG_DIFF_DST, dst_plain, pd.diff_dst_desc(), false),
        make_slot(DNNL_ARG_SRC, src_plain, pd.src_desc(), false),
        make_slot(DNNL_ARG_DIFF_WEIGHTS, wei_plain, pd.diff_weights_desc(), true));
  }
  return plan;
}

// Runs one plan on (chunks of) user buffers; 0 or 3 on a oneDNN error.
int execute(Plan &plan, void *const *inputs, void *output) {
  try {
    auto &eng = cpu_engine();
    dnnl::stream stream(eng);
    std::unordered_map<int, memory> args = {{DNNL_ARG_SCRATCHPAD, plan.scratchpad}};
    for (int i = 0; i < plan.num_inputs; ++i) {
      Slot &slot = plan.inputs[i];
      memory user(slot.plain, eng, inputs[i]);
      if (slot.needs_reorder) slot.reorder.execute(stream, user, slot.inner);
      args.insert({slot.arg, slot.needs_reorder ? slot.inner : user});
    }
    memory user_out(plan.output.plain, eng, output);
    args.insert({plan.output.arg, plan.output.needs_reorder ? plan.output.inner : user_out});
    plan.conv.execute(stream, args);
    if (plan.output.needs_reorder) plan.output.reorder.execute(stream, plan.output.inner, user_out);
    stream.wait();
  } catch (const dnnl::error &) {
    return 3;
  }
  return 0;
}

std::map<std::array<int64_t, 17>, Plan> g_plans;

Plan &plan_for(Kind kind, const Geometry &g, int64_t slot, int64_t threads) {
  const std::array<int64_t, 17> key = {kind, slot, threads, g.n,      g.c,      g.h,     g.w,     g.o,   g.kh,
                                       g.kw, g.oh, g.ow,    g.groups, g.stride, g.pad_h, g.pad_w, g.bias};
  auto it = g_plans.find(key);
  if (it == g_plans.end()) {
    omp_set_num_threads(static_cast<int>(threads));  // oneDNN sizes a plan for the team it is created under
    it = g_plans.emplace(key, make_plan(kind, g)).first;
  }
  return it->second;
}

int run(Kind kind, const Geometry &g, void *const *params, void *output) {
  std::lock_guard<std::mutex> lock(zoo::op_mutex());
  const int caller_threads = omp_get_max_threads();
  const int64_t chunks = std::min<int64_t>(zoo::team_size(), g.n);
  const int64_t threads = chunks == 1 ? zoo::team_size() : 1;
  const int64_t in_image = g.c * g.h * g.w, out_image = g.o * g.oh * g.ow;
  const int64_t weights = g.o * (g.c / g.groups) * g.kh * g.kw;
  std::vector<std::function<void()>> jobs;
  std::vector<int> status(chunks, 0);
  std::vector<float *> partial_dw(chunks, nullptr);
  float *const *user = reinterpret_cast<float *const *>(params);
  for (int64_t t = 0, first = 0; t < chunks; ++t) {
    Geometry part = g;
    part.n = g.n / chunks + (t < g.n % chunks ? 1 : 0);
    Plan &plan = plan_for(kind, part, t, threads);
    std::array<void *, 3> in = {nullptr, nullptr, nullptr};
    void *out = nullptr;
    if (kind == kForward) {  // x, w[, b] -> y
      in = {user[0] + first * in_image, user[1], g.bias ? user[2] : nullptr};
      out = static_cast<float *>(output) + first * out_image;
    } else if (kind == kBackwardData) {  // dy, w -> dx
      in = {user[0] + first * out_image, user[1], nullptr};
      out = static_cast<float *>(output) + first * in_image;
    } else {  // dy, x -> dw: every chunk but the first into its own buffer, summed below
      in = {user[0] + first * out_image, user[1] + first * in_image, nullptr};
      if (t > 0 && plan.partial.size() != static_cast<size_t>(weights)) plan.partial.assign(weights, 0.f);
      partial_dw[t] = t == 0 ? static_cast<float *>(output) : plan.partial.data();
      out = partial_dw[t];
    }
    jobs.emplace_back([&plan, in, out, &status, t] { status[t] = execute(plan, in.data(), out); });
    first += part.n;
  }
  omp_set_num_threads(static_cast<int>(threads));
  if (chunks == 1) jobs[0]();
  else zoo::helpers().run_all(jobs);
  omp_set_num_threads(caller_threads);
  for (int code : status)
    if (code != 0) return code;
  for (int64_t t = 1; t < chunks && kind == kBackwardWeights; ++t)
    for (int64_t i = 0; i < weights; ++i) partial_dw[0][i] += partial_dw[t][i];
  return 0;
}

bool float32_4d(int count, const int *ndims, const char **dtypes) {
  return zoo::all_float32(count, dtypes) && ndims[0] == 4 && ndims[1] == 4 && ndims[count - 1] == 4;
}

int guarded(Kind kind, int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
  const bool bias = kind == kForward && nparam == 4;
  if ((kind == kForward && nparam != 3 && nparam != 4) || (kind != kForward && nparam != 4)) return 1;
  if (!float32_4d(nparam, ndims, dtypes) || (bias && (ndims[2] != 1 || shapes[2][0] != shapes[1][0]))) return 1;
  const int out = nparam - 1;
  Geometry g;
  bool ok = false;
  if (kind == kForward) ok = make_geometry(shapes[0], shapes[1], shapes[out], bias, &g);          // x, w[, b] -> y
  if (kind == kBackwardData) ok = make_geometry(shapes[out], shapes[1], shapes[0], false, &g);     // dy, w, x -> dx
  if (kind == kBackwardWeights) ok = make_geometry(shapes[1], shapes[out], shapes[0], false, &g);  // dy, x, w -> dw
  if (!ok) return 2;
  try {
    return run(kind, g, params, params[out]);
  } catch (const dnnl::error &) {
    return 3;
  }
}

}  // namespace

extern "C" {
ZOO_AOT_ENTRY(ZooConvForward, guarded(kForward, n, p, d, s, t))
ZOO_AOT_ENTRY(ZooConvBackwardData, guarded(kBackwardData, n, p, d, s, t))
ZOO_AOT_ENTRY(ZooConvBackwardWeights, guarded(kBackwardWeights, n, p, d, s, t))
}
