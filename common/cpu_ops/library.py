"""Building the CPU operator library MindSpore loads: where oneDNN 3.x is, g++, the build cache.

`csrc/` holds the kernels with MindSpore's AOT signature: `onednn_conv.cc` (grouped convolution through oneDNN 3.x,
cpu_ops.conv), `batchnorm.cc` (BatchNorm [+ add] + ReLU training forward and gradient, inference epilogues;
cpu_ops.batchnorm and cpu_ops.epilogue), `split_attention.cc` (ResNeSt's radix-2 pooling and weighted sum,
cpu_ops.split_attention) and `momentum.cc` (the momentum update, cpu_ops.momentum), over the thread pool of
`cpu_threads.h`. `loader_shim.cc` is the library
MindSpore loads; it opens the kernels' library with RTLD_DEEPBIND so that its oneDNN 3.x symbols do not bind to the
oneDNN 2.x MindSpore has already loaded (same C names). Both are compiled with g++ at first use, against the oneDNN
of the `onednn-cpu-gomp` / `onednn-devel-cpu-gomp` wheels, into a per-source cache folder (ZOO_CACHE_DIR, else
~/.cache/mindspore-zoo). Without the wheels or g++ `library_path()` is None and every layer keeps MindSpore's
native kernels.
"""
from __future__ import annotations

import functools
import hashlib
import logging
import os
import platform
import re
import shutil
import site
import subprocess
import sys
from pathlib import Path
from typing import List, Optional, Tuple

from ..fileio import atomic_path, first_line

ENV_CACHE = "ZOO_CACHE_DIR"
SOURCE_DIR = Path(__file__).resolve().parent / "csrc"
KERNEL_SOURCES = ("onednn_conv.cc", "batchnorm.cc", "split_attention.cc", "momentum.cc")
IMPL_NAME = "libzoo_cpu_ops_impl.so"
SHIM_NAME = "libzoo_cpu_ops.so"

_log = logging.getLogger(__name__)

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


class _CompileError(Exception):
    """g++ failed; the message is its first line of output."""


def _compile(args: List[str], target: Path) -> str:
    """Run g++ into a temporary name renamed over `target` (concurrent ranks may build at once); '' or why not."""
    try:
        with atomic_path(str(target)) as tmp:
            proc = subprocess.run(args + ["-o", tmp], capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise _CompileError(proc.stderr.strip() or f"g++ exited {proc.returncode}")
    except (_CompileError, OSError) as exc:
        return first_line(exc)
    return ""


def _build_folder(cache: Path, tag: str, sources: List[Path], extra: str, compiler: str) -> Tuple[Optional[Path], str]:
    """(cache/<tag>-<digest of the sources and `extra`>, created, '') or (None, why not): a build is reused while
    its sources match, and concurrent ranks building the same sources share one folder."""
    if shutil.which(compiler) is None:
        return None, f"no C++ compiler '{compiler}' on PATH (apt install g++)"
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sources) + extra.encode()).hexdigest()[:16]
    folder = cache / f"{tag}-{digest}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return None, f"cannot create the build folder {folder}: {exc.strerror}"
    return folder, ""


def build_standalone(source: Path, name: str, cache: Path, flags: Tuple[str, ...] = (),
                     compiler: str = "g++") -> Tuple[Optional[Path], str]:
    """Compile one dependency-free C++ `source` into the shared library `name` under `cache` (reused while the
    source, `flags` and the machine type match: a home folder shared by x86_64 and aarch64 hosts keeps one build
    of each); (path, '') or (None, why it could not be built)."""
    folder, why = _build_folder(cache, source.stem, [source], " ".join((platform.machine(), *flags)), compiler)
    if folder is None:
        return None, why
    target = folder / name
    if not target.is_file():
        why = _compile([compiler, "-O3", "-std=c++17", "-shared", "-fPIC", *flags, str(source)], target)
    return (None, f"building {source.name} failed: {why}") if why else (target, "")


def build_library(prefix: Path, cache: Path, compiler: str = "g++") -> Tuple[Optional[Path], str]:
    """Compile the operator against the oneDNN under `prefix` into `cache` (reused while sources and prefix match).

    Returns (path of the library MindSpore loads, '') or (None, why it could not be built).
    """
    sources = sorted(SOURCE_DIR.glob("*.cc")) + sorted(SOURCE_DIR.glob("*.h"))
    folder, why = _build_folder(cache, "cpu_ops", sources, str(prefix), compiler)
    if folder is None:
        return None, why
    shim = folder / SHIM_NAME
    if shim.is_file() and (folder / IMPL_NAME).is_file():
        return shim, ""
    common = [compiler, "-O3", "-std=c++17", "-shared", "-fPIC"]
    lib = prefix / "lib"
    kernels = [str(SOURCE_DIR / name) for name in KERNEL_SOURCES]
    why = _compile(common + ["-fopenmp", f"-I{prefix / 'include'}"] + kernels +
                   [f"-L{lib}", "-l:libdnnl.so.3", f"-Wl,-rpath,{lib}"], folder / IMPL_NAME)
    if not why:
        why = _compile(common + [f'-DZOO_IMPL_NAME="{IMPL_NAME}"', str(SOURCE_DIR / "loader_shim.cc"),
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
