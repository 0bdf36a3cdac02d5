// The library MindSpore loads for the zoo's AOT CPU operators (common/cpu_ops/library.py). It forwards each call to the
// kernels' library (onednn_conv.cc, batchnorm.cc, split_attention.cc, momentum.cc), opened with RTLD_DEEPBIND:
// MindSpore's CPU backend has already loaded its own oneDNN 2.x (libdnnl.so.2), which exports the same C symbols
// (dnnl_*) as the oneDNN 3.x the kernels need; a plain link would bind them to the 2.x library and crash. Deep
// binding makes the kernels' library and its libdnnl.so.3 resolve their own symbols first.
#include <dlfcn.h>

#include <cstdint>
#include <mutex>
#include <string>

namespace {

using AotFn = int (*)(int, void **, int *, int64_t **, const char **, void *, void *);

void *impl_handle() {
  static void *handle = [] {
    Dl_info info;
    if (dladdr(reinterpret_cast<void *>(&impl_handle), &info) == 0 || info.dli_fname == nullptr) return (void *)nullptr;
    std::string path(info.dli_fname);
    path = path.substr(0, path.rfind('/') + 1) + ZOO_IMPL_NAME;
    return dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
  }();
  return handle;
}

AotFn resolve(const char *name) {
  void *handle = impl_handle();
  return handle == nullptr ? nullptr : reinterpret_cast<AotFn>(dlsym(handle, name));
}

}  // namespace

// The exported entry point `symbol`, forwarding to the kernel library's function `target` (resolved by name once,
// thread-safe through the function-local static).
#define ZOO_FORWARD(symbol, target)                                                     \
  int symbol(int n, void **p, int *d, int64_t **s, const char **t, void *st, void *e) { \
    static const AotFn fn = resolve(#target);                                           \
    return fn == nullptr ? 10 : fn(n, p, d, s, t, st, e);                               \
  }
#define ZOO_FORWARD_SAME(symbol) ZOO_FORWARD(symbol, symbol)

extern "C" {
// One forward symbol per stride: MindSpore's PyNative mode caches an AOT op's inferred output shape by its function
// name and input shapes, so a stride-1 and a stride-2 conv on the same input must not share a name.
ZOO_FORWARD(ZooConvForwardStride1, ZooConvForward)
ZOO_FORWARD(ZooConvForwardStride2, ZooConvForward)
ZOO_FORWARD_SAME(ZooConvBackwardData)
ZOO_FORWARD_SAME(ZooConvBackwardWeights)
ZOO_FORWARD_SAME(ZooBatchNormTrain)
ZOO_FORWARD_SAME(ZooBatchNormReLUTrain)
ZOO_FORWARD_SAME(ZooBatchNormAddReLUTrain)
ZOO_FORWARD_SAME(ZooBatchNormGrad)
ZOO_FORWARD_SAME(ZooBatchNormReLUGrad)
ZOO_FORWARD_SAME(ZooBatchNormAddReLUGrad)
ZOO_FORWARD_SAME(ZooRadixGap)
ZOO_FORWARD_SAME(ZooRadixGapGrad)
ZOO_FORWARD_SAME(ZooRadixCombine)
ZOO_FORWARD_SAME(ZooRadixCombineGrad)
ZOO_FORWARD_SAME(ZooMomentumStep)
ZOO_FORWARD_SAME(ZooBiasReLU)
ZOO_FORWARD_SAME(ZooBiasAddReLU)
}
