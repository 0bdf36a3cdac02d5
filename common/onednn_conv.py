"""Grouped convolutions on the CPU backend through oneDNN 3.x, as a MindSpore AOT custom operator.

MindSpore 2.8's CPU convolutions run oneDNN 2.2 `gemm:jit` kernels on plain NCHW memory. ResNeXt's grouped 3x3
convs (4-32 channels a group) suffer most: forward plus both gradients take 47 / 37 / 18 / 13 ms at ResNeXt-50's
stage 1-4 shapes (bs 8, 224 px), against 38 / 9 / 5 / 4 ms through oneDNN 3.2's direct `jit:avx512_core` kernels on
blocked memory (benchmarks/RESULTS.md, round 4). Dense 1x1 convs stay native: there the reorders around oneDNN 3.x
cost more than its kernel saves.

How it is wired: `csrc/onednn_conv.cc` holds forward, input-gradient and weight-gradient kernels with MindSpore's AOT
signature; `csrc/onednn_conv_shim.cc` is the library MindSpore loads, which opens the first with RTLD_DEEPBIND so that
its oneDNN 3.x symbols do not bind to the oneDNN 2.x MindSpore has already loaded (same C names). Both are compiled
with g++ at the first conv built, against the oneDNN of the `onednn-cpu-gomp` / `onednn-devel-cpu-gomp` wheels, into
a per-source cache folder (ZOO_CACHE_DIR, else ~/.cache/mindspore-zoo).

Where it applies (decided once per process): CPU backend, grouped convs (group > 1), float32 inputs, oneDNN 3.x and
g++ present, ZOO_ONEDNN_CONV not 0, and not inside `native_convs()` (export uses it: deployment graphs hold only
native operators). Anywhere else nn.Conv2d runs unchanged; Ascend and GPU always keep it. tests/test_onednn_conv.py
checks outputs and gradients against the native operator to 1e-4.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import re
import shutil
import site
import subprocess
import sys
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

import mindspore as ms
from mindspore import nn, ops
from mindspore.common import dtype as mstype

ENV_SWITCH = "ZOO_ONEDNN_CONV"
ENV_CACHE = "ZOO_CACHE_DIR"
SOURCE_DIR = Path(__file__).resolve().parent / "csrc"
IMPL_NAME = "libzoo_onednn_conv_impl.so"
SHIM_NAME = "libzoo_onednn_conv.so"

_log = logging.getLogger(__name__)
_native_only = False


def _switch_on(value: str) -> bool:
    return value.strip().lower() not in ("0", "false", "no", "off")


def onednn_conv_applies(device_target: str, groups: int, switch: str = "1") -> bool:
    """Whether a conv takes the oneDNN 3.x operator, library availability aside: CPU backend, grouped, switch on."""
    return _switch_on(switch) and device_target == "CPU" and groups > 1


@contextlib.contextmanager
def native_convs() -> Iterator[None]:
    """Build every conv as plain nn.Conv2d inside this block (exported graphs must hold native operators only)."""
    global _native_only
    before, _native_only = _native_only, True
    try:
        yield
    finally:
        _native_only = before


def use_onednn_conv(groups: int) -> bool:
    """The decision for one conv of the backbone (see the module doc)."""
    if _native_only or not onednn_conv_applies(ms.get_context("device_target"), groups,
                                               os.environ.get(ENV_SWITCH, "1")):
        return False
    return library_path() is not None


def onednn_prefixes() -> List[Path]:
    """Install prefixes where pip puts the oneDNN wheels' lib/ and include/ (venv, user site, base interpreter)."""
    candidates = [sys.prefix, site.getuserbase(), sys.base_prefix]
    return [Path(p) for p in dict.fromkeys(candidates) if p]


def find_onednn(prefixes: Optional[List[Path]] = None) -> Tuple[Optional[Path], str]:
    """(prefix holding oneDNN >= 3 headers and libdnnl.so.3, '') or (None, why not)."""
    for prefix in prefixes if prefixes is not None else onednn_prefixes():
        version_h = prefix / "include" / "oneapi" / "dnnl" / "dnnl_version.h"
        if not (version_h.is_file() and (prefix / "lib" / "libdnnl.so.3").exists()):
            continue
        major = re.search(r"#define\s+DNNL_VERSION_MAJOR\s+(\d+)", version_h.read_text(encoding="utf-8"))
        if major and int(major.group(1)) >= 3:
            return prefix, ""
    return None, "oneDNN 3.x not found (pip install onednn-cpu-gomp onednn-devel-cpu-gomp)"


def cache_root() -> Path:
    return Path(os.environ.get(ENV_CACHE) or Path.home() / ".cache" / "mindspore-zoo")


def _compile(args: List[str], target: Path) -> str:
    """Run g++ into a temporary name and rename it over `target` (atomic: concurrent ranks may build at once)."""
    tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    proc = subprocess.run(args + ["-o", str(tmp)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        return proc.stderr.strip().splitlines()[0] if proc.stderr.strip() else f"g++ exited {proc.returncode}"
    os.replace(tmp, target)
    return ""


def build_library(prefix: Path, cache: Path, compiler: str = "g++") -> Tuple[Optional[Path], str]:
    """Compile the operator against the oneDNN under `prefix` into `cache` (reused while sources and prefix match).

    Returns (path of the library MindSpore loads, '') or (None, why it could not be built).
    """
    if shutil.which(compiler) is None:
        return None, f"no C++ compiler '{compiler}' on PATH (apt install g++)"
    impl_src, shim_src = SOURCE_DIR / "onednn_conv.cc", SOURCE_DIR / "onednn_conv_shim.cc"
    digest = hashlib.sha256(impl_src.read_bytes() + shim_src.read_bytes() + str(prefix).encode()).hexdigest()[:16]
    folder = cache / f"onednn_conv-{digest}"
    shim = folder / SHIM_NAME
    if shim.is_file() and (folder / IMPL_NAME).is_file():
        return shim, ""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return None, f"cannot create the build folder {folder}: {exc.strerror}"
    common = [compiler, "-O2", "-std=c++17", "-shared", "-fPIC"]
    lib = prefix / "lib"
    why = _compile(common + ["-fopenmp", f"-I{prefix / 'include'}", str(impl_src), f"-L{lib}", "-l:libdnnl.so.3",
                             f"-Wl,-rpath,{lib}"], folder / IMPL_NAME)
    if not why:
        why = _compile(common + [f'-DZOO_CONV_IMPL_NAME="{IMPL_NAME}"', str(shim_src), "-ldl"], shim)
    return (None, f"building the oneDNN conv operator failed: {why}") if why else (shim, "")


@functools.lru_cache(maxsize=None)
def library_path() -> Optional[str]:
    """The built operator library, or None (with the reason logged once) when it cannot be had here."""
    prefix, why = find_onednn()
    path = None
    if prefix is not None:
        path, why = build_library(prefix, cache_root())
    white_list = os.environ.get("MS_CUSTOM_AOT_WHITE_LIST")
    if path is not None and white_list and os.path.realpath(white_list) not in os.path.realpath(path):
        path, why = None, f"MS_CUSTOM_AOT_WHITE_LIST does not admit {path.parent}"
    if path is None:
        _log.info("grouped convs use MindSpore's native kernels: %s", why)
        return None
    return str(path)


def _out_size(size: int, kernel: int, stride: int) -> int:
    return (size + 2 * (kernel // 2) - kernel) // stride + 1


class OneDNNConv2d(nn.Conv2d):
    """nn.Conv2d (same parameters, names and init) computed by the oneDNN 3.x operator on float32 inputs.

    Padding is kernel // 2 and dilation 1 (all the backbone uses; the kernels derive the geometry from the shapes).
    Other dtypes (AMP) take the native path inside `construct`, decided when the graph is compiled.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1,
                 has_bias: bool = False, weight_init="normal", bias_init="zeros") -> None:
        if stride not in (1, 2):
            raise ValueError(f"OneDNNConv2d supports stride 1 or 2, got {stride}")
        super().__init__(in_ch, out_ch, kernel, stride=stride, pad_mode="pad", padding=kernel // 2, group=groups,
                         has_bias=has_bias, weight_init=weight_init, bias_init=bias_init)
        lib = library_path()
        if lib is None:
            raise RuntimeError("the oneDNN conv operator is not available here; build convs with backbone.conv2d")
        grad_input = ops.Custom(f"{lib}:ZooConvBackwardData", lambda dy, w, x: x, lambda dy, w, x: dy, "aot")
        grad_weight = ops.Custom(f"{lib}:ZooConvBackwardWeights", lambda dy, x, w: w, lambda dy, x, w: dy, "aot")

        def out_shape(x, w, *bias):
            return [x[0], w[0], _out_size(x[2], kernel, stride), _out_size(x[3], kernel, stride)]

        def bprop(x, w, out, dout):
            return grad_input(dout, w, x), grad_weight(dout, x, w)

        def bprop_bias(x, w, b, out, dout):
            return grad_input(dout, w, x), grad_weight(dout, x, w), dout.sum(axis=(0, 2, 3))

        self.fused = ops.Custom(f"{lib}:ZooConvForwardStride{stride}", out_shape, lambda x, w, *bias: x, "aot",
                                bprop=bprop_bias if has_bias else bprop)

    def construct(self, x):
        if x.dtype != mstype.float32:
            output = self.conv2d(x, self.weight)
            if self.has_bias:
                output = self.bias_add(output, self.bias)
            return output
        if self.has_bias:
            return self.fused(x, self.weight, self.bias)
        return self.fused(x, self.weight)
