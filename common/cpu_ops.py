"""The zoo's CPU custom operators: where oneDNN 3.x is, and building the operator library MindSpore loads.

`csrc/` holds the kernels with MindSpore's AOT signature: `onednn_conv.cc` (grouped convolution through oneDNN 3.x,
common/onednn_conv.py), `batchnorm.cc` (fused BatchNorm + ReLU training forward and gradient, common/fused_bn.py),
`split_attention.cc` (ResNeSt's radix-2 pooling and weighted sum, common/fused_attention.py) and `sgd.cc` (the
momentum update, common/fused_sgd.py), over the thread pool of `cpu_threads.h`. `onednn_conv_shim.cc` is the library
MindSpore loads; it opens the kernels' library with RTLD_DEEPBIND so that its oneDNN 3.x symbols do not bind to the
oneDNN 2.x MindSpore has already loaded (same C names). Both are compiled with g++ at first use, against the oneDNN
of the `onednn-cpu-gomp` / `onednn-devel-cpu-gomp` wheels, into a per-source cache folder (ZOO_CACHE_DIR, else
~/.cache/mindspore-zoo). Without the wheels or g++ `library_path()` is None and every layer keeps MindSpore's
native kernels.
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

ENV_CACHE = "ZOO_CACHE_DIR"
SOURCE_DIR = Path(__file__).resolve().parent / "csrc"
KERNEL_SOURCES = ("onednn_conv.cc", "batchnorm.cc", "split_attention.cc", "sgd.cc")
IMPL_NAME = "libzoo_cpu_ops_impl.so"
SHIM_NAME = "libzoo_cpu_ops.so"

_log = logging.getLogger(__name__)
_native_only = False


def switch_on(value: str) -> bool:
    """False for the usual spellings of off (0, false, no, off)."""
    return value.strip().lower() not in ("0", "false", "no", "off")


@contextlib.contextmanager
def native_ops() -> Iterator[None]:
    """Build every layer with MindSpore's native operators inside this block (exported graphs hold nothing else)."""
    global _native_only
    before, _native_only = _native_only, True
    try:
        yield
    finally:
        _native_only = before


def native_only() -> bool:
    """Whether a `native_ops()` block is open."""
    return _native_only


def kernels_apply(device_target: str, switch: str = "1") -> bool:
    """Whether the zoo's CPU operators apply, library availability aside: the CPU backend, the switch not off."""
    return switch_on(switch) and device_target == "CPU"


def kernels_enabled(switch_name: str) -> bool:
    """The build-time decision for one family of the operators (each module's ENV_SWITCH): `kernels_apply` for the
    current backend and the environment switch, outside a `native_ops()` block, with the library built here."""
    import mindspore as ms

    if native_only() or not kernels_apply(ms.get_context("device_target"), os.environ.get(switch_name, "1")):
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
    sources = sorted(SOURCE_DIR.glob("*.cc")) + sorted(SOURCE_DIR.glob("*.h"))
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sources) + str(prefix).encode()).hexdigest()[:16]
    folder = cache / f"cpu_ops-{digest}"
    shim = folder / SHIM_NAME
    if shim.is_file() and (folder / IMPL_NAME).is_file():
        return shim, ""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return None, f"cannot create the build folder {folder}: {exc.strerror}"
    common = [compiler, "-O3", "-std=c++17", "-shared", "-fPIC"]
    lib = prefix / "lib"
    kernels = [str(SOURCE_DIR / name) for name in KERNEL_SOURCES]
    why = _compile(common + ["-fopenmp", f"-I{prefix / 'include'}"] + kernels +
                   [f"-L{lib}", "-l:libdnnl.so.3", f"-Wl,-rpath,{lib}"], folder / IMPL_NAME)
    if not why:
        why = _compile(common + [f'-DZOO_CONV_IMPL_NAME="{IMPL_NAME}"', str(SOURCE_DIR / "onednn_conv_shim.cc"),
                                 "-ldl"], shim)
    return (None, f"building the CPU operators failed: {why}") if why else (shim, "")


@functools.lru_cache(maxsize=None)
def library_path() -> Optional[str]:
    """The built operator library, or None (with one warning saying why) when it cannot be had here.

    Called only where the CPU backend could use it, so Ascend/GPU runs never build or warn.
    """
    prefix, why = find_onednn()
    path = None
    if prefix is not None:
        path, why = build_library(prefix, cache_root())
    white_list = os.environ.get("MS_CUSTOM_AOT_WHITE_LIST")
    if path is not None and white_list and os.path.realpath(white_list) not in os.path.realpath(path):
        path, why = None, f"MS_CUSTOM_AOT_WHITE_LIST does not admit {path.parent}"
    if path is None:
        _log.warning("the zoo's faster CPU operators are off (%s); MindSpore's native kernels run", why)
        return None
    return str(path)
