// The library MindSpore loads for the zoo's AOT CPU operators (common/cpu_ops.py). It forwards each call to the
// kernels' library (onednn_conv.cc, batchnorm.cc, split_attention.cc, sgd.cc), opened with RTLD_DEEPBIND:
// MindSpore's CPU backend has already loaded its own oneDNN 2.x (libdnnl.so.2), which exports the same C symbols
// (dnnl_*) as the oneDNN 3.x the kernels need; a plain link would bind them to the 2.x library and crash. Deep
// binding makes the kernels' library and its libdnnl.so.3 resolve their own symbols first.
#include <dlfcn.h>

#include <cstdint>
#include <mutex>
#include <string>

namespace {

using AotFn = int (*)(int, void **, int *, int64_t **, const char **, void *, void *);

constexpr const char *kNames[] = {"ZooConvForward",       "ZooConvBackwardData",   "ZooConvBackwardWeights",
                                  "ZooBatchNormTrain",    "ZooBatchNormReLUTrain", "ZooBatchNormAddReLUTrain",
                                  "ZooBatchNormGrad",     "ZooBatchNormReLUGrad",  "ZooBatchNormAddReLUGrad",
                                  "ZooRadixGap",          "ZooRadixGapGrad",       "ZooRadixCombine",
                                  "ZooRadixCombineGrad",  "ZooMomentumStep",       "ZooBiasReLU",
                                  "ZooBiasAddReLU"};
constexpr int kCount = sizeof(kNames) / sizeof(kNames[0]);
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

// The exported entry point `symbol`, forwarding to kNames[index].
#define ZOO_FORWARD(symbol, index)                                                      \
  int symbol(int n, void **p, int *d, int64_t **s, const char **t, void *st, void *e) { \
    return call(index, n, p, d, s, t, st, e);                                           \
  }

extern "C" {
// One forward symbol per stride: MindSpore's PyNative mode caches an AOT op's inferred output shape by its function
// name and input shapes, so a stride-1 and a stride-2 conv on the same input must not share a name.
ZOO_FORWARD(ZooConvForwardStride1, 0)
ZOO_FORWARD(ZooConvForwardStride2, 0)
ZOO_FORWARD(ZooConvBackwardData, 1)
ZOO_FORWARD(ZooConvBackwardWeights, 2)
ZOO_FORWARD(ZooBatchNormTrain, 3)
ZOO_FORWARD(ZooBatchNormReLUTrain, 4)
ZOO_FORWARD(ZooBatchNormAddReLUTrain, 5)
ZOO_FORWARD(ZooBatchNormGrad, 6)
ZOO_FORWARD(ZooBatchNormReLUGrad, 7)
ZOO_FORWARD(ZooBatchNormAddReLUGrad, 8)
ZOO_FORWARD(ZooRadixGap, 9)
ZOO_FORWARD(ZooRadixGapGrad, 10)
ZOO_FORWARD(ZooRadixCombine, 11)
ZOO_FORWARD(ZooRadixCombineGrad, 12)
ZOO_FORWARD(ZooMomentumStep, 13)
ZOO_FORWARD(ZooBiasReLU, 14)
ZOO_FORWARD(ZooBiasAddReLU, 15)
}
