// The library MindSpore loads for the zoo's AOT CPU operators (common/cpu_ops.py). It forwards each call to the
// kernels' library (onednn_conv.cc, batchnorm.cc, split_attention.cc), opened with RTLD_DEEPBIND: MindSpore's CPU
// backend has already loaded its own oneDNN 2.x (libdnnl.so.2), which exports the same C symbols (dnnl_*) as the
// oneDNN 3.x the kernels need; a plain link would bind them to the 2.x library and crash. Deep binding makes the
// kernels' library and its libdnnl.so.3 resolve their own symbols first.
#include <dlfcn.h>

#include <cstdint>
#include <mutex>
#include <string>

namespace {

using AotFn = int (*)(int, void **, int *, int64_t **, const char **, void *, void *);

constexpr int kCount = 11;
constexpr const char *kNames[kCount] = {"ZooConvForward", "ZooConvBackwardData", "ZooConvBackwardWeights",
                                        "ZooBatchNormReLUTrain", "ZooBatchNormAddReLUTrain", "ZooBatchNormReLUGrad",
                                        "ZooBatchNormAddReLUGrad", "ZooRadixGap", "ZooRadixGapGrad",
                                        "ZooRadixCombine", "ZooRadixCombineGrad"};
AotFn g_fns[kCount] = {};
std::once_flag g_once;

void load() {
  Dl_info info;
  if (dladdr(reinterpret_cast<void *>(&load), &info) == 0 || info.dli_fname == nullptr) return;
  std::string path(info.dli_fname);
  path = path.substr(0, path.rfind('/') + 1) + ZOO_CONV_IMPL_NAME;
  void *handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
  if (handle == nullptr) return;
  for (int i = 0; i < kCount; ++i) g_fns[i] = reinterpret_cast<AotFn>(dlsym(handle, kNames[i]));
}

int call(int which, int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *stream,
         void *extra) {
  std::call_once(g_once, load);
  if (g_fns[which] == nullptr) return 10;
  return g_fns[which](nparam, params, ndims, shapes, dtypes, stream, extra);
}

}  // namespace

// One forward symbol per stride: MindSpore's PyNative mode caches an AOT op's inferred output shape by its function
// name and input shapes, so a stride-1 and a stride-2 conv on the same input must not share a name.
extern "C" {
int ZooConvForwardStride1(int n, void **p, int *d, int64_t **s, const char **t, void *st, void *e) {
  return call(0, n, p, d, s, t, st, e);
}
int ZooConvForwardStride2(int n, void **p, int *d, int64_t **s, const char **t, void *st, void *e) {
  return call(0, n, p, d, s, t, st, e);
}
int ZooConvBackwardData(int n, void **p, int *d, int64_t **s, const char **t, void *st, void *e) {
  return call(1, n, p, d, s, t, st, e);
}
int ZooConvBackwardWeights(int n, void **p, int *d, int64_t **s, const char **t, void *st, void *e) {
  return call(2, n, p, d, s, t, st, e);
}
int ZooBatchNormReLUTrain(int n, void **p, int *d, int64_t **s, const char **t, void *st, void *e) {
  return call(3, n, p, d, s, t, st, e);
}
int ZooBatchNormAddReLUTrain(int n, void **p, int *d, int64_t **s, const char **t, void *st, void *e) {
  return call(4, n, p, d, s, t, st, e);
}
int ZooBatchNormReLUGrad(int n, void **p, int *d, int64_t **s, const char **t, void *st, void *e) {
  return call(5, n, p, d, s, t, st, e);
}
int ZooBatchNormAddReLUGrad(int n, void **p, int *d, int64_t **s, const char **t, void *st, void *e) {
  return call(6, n, p, d, s, t, st, e);
}
int ZooRadixGap(int n, void **p, int *d, int64_t **s, const char **t, void *st, void *e) {
  return call(7, n, p, d, s, t, st, e);
}
int ZooRadixGapGrad(int n, void **p, int *d, int64_t **s, const char **t, void *st, void *e) {
  return call(8, n, p, d, s, t, st, e);
}
int ZooRadixCombine(int n, void **p, int *d, int64_t **s, const char **t, void *st, void *e) {
  return call(9, n, p, d, s, t, st, e);
}
int ZooRadixCombineGrad(int n, void **p, int *d, int64_t **s, const char **t, void *st, void *e) {
  return call(10, n, p, d, s, t, st, e);
}
}
