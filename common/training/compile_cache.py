"""MindSpore's graph compile cache, made safe to share between runs: `ZOO_COMPILE_CACHE=DIR` keeps the compiled
training graph of a run, and a later run of the same configuration (a resume after preemption, a rerun) loads it
instead of compiling again (measured on CPU: ResNeXt-50 at 32 px, batch 4, step 1 took 13.0 s compiling and 2.4 s
with the kept graph, the whole 4-step run 21.6 s and 11.3 s, the same losses).

MindSpore's own cache (MS_COMPILER_CACHE_ENABLE / MS_COMPILER_CACHE_PATH) only checks that the Python files of the
network are unchanged: a run with another class count or image size loads the graph of the last run and fails
inside a kernel, or computes with the wrong shapes (measured: `--num_classes 3` after a run with 2 died in Gather).
So each configuration gets its own folder, named by a hash of everything the graph is built from: the resolved
config, the shapes, types and trainability of every parameter of the training cell, the split sizes, the rank and
group size, the device, MindSpore's version, the zoo's switches that change graphs and the zoo's own source files
(Python and the C++ of its CPU operators). A folder in use by another process (an flock) is left alone: that run
compiles without a cache. Off unless ZOO_COMPILE_CACHE is set.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from typing import Any, Dict, Optional

from ..cpu_ops import SWITCHES
from ..cpu_ops.library import ENV_CACHE
from .sink import SINK_ON_CPU

ENV = "ZOO_COMPILE_CACHE"
# Keys that only name files: they change no graph (the data's effect is in the split sizes hashed beside).
_PATH_KEYS = ("data_dir", "output_dir", "resume", "pretrained", "checkpoint_path", "train_url", "data_url")
# The zoo's variables that change the graph: the CPU operator switches, where the operator library lives (the graph
# names its file) and the CPU sink loop.
_GRAPH_SWITCHES = SWITCHES + (ENV_CACHE, SINK_ON_CPU)
_ZOO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_held: list = []  # the lock files of this process's cache folders, open until it exits


def source_digest(model_dir: str) -> str:
    """sha256 over the zoo's source files: common/ (Python and the C++ of its CPU operators) and the model folder's
    own .py/.yaml files and src/ (not the rest of it: launchers write run folders there)."""
    digest = hashlib.sha256()

    def add(path: str) -> None:
        digest.update(os.path.relpath(path, _ZOO_ROOT).encode())
        with open(path, "rb") as fh:
            digest.update(hashlib.sha256(fh.read()).digest())

    for root in (os.path.join(_ZOO_ROOT, "common"), os.path.join(model_dir, "src")):
        for folder, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__")
            for name in sorted(files):
                if name.endswith((".py", ".cc", ".h")):
                    add(os.path.join(folder, name))
    if os.path.isdir(model_dir):
        for name in sorted(os.listdir(model_dir)):
            if name.endswith((".py", ".yaml")):
                add(os.path.join(model_dir, name))
    return digest.hexdigest()


def graph_key(cfg: Dict[str, Any], step_cell, facts: Dict[str, Any]) -> str:
    """The folder name for the training graph of `step_cell` built from `cfg`, with `facts` (split sizes, rank,
    group size, device) that shape it besides the config."""
    import mindspore as ms

    params = [(p.name, list(p.shape), str(p.dtype), bool(p.requires_grad)) for p in step_cell.get_parameters()]
    record = {
        "config": {k: v for k, v in cfg.items() if k not in _PATH_KEYS},
        "parameters": params,
        "facts": facts,
        "mindspore": ms.__version__,
        "switches": {k: os.environ.get(k, "") for k in _GRAPH_SWITCHES},
        "source": source_digest(os.path.dirname(os.path.abspath(sys.argv[0] or "."))),
    }
    text = json.dumps(record, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _lock(path: str) -> bool:
    """Hold an exclusive lock on `path` for the rest of the process, or False when another process holds it."""
    try:
        import fcntl

        handle = open(path, "a+")
    except (ImportError, OSError):
        return False
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return False
    _held.append(handle)
    return True


def use_compile_cache(cfg: Dict[str, Any], step_cell, facts: Dict[str, Any]) -> Optional[str]:
    """With ZOO_COMPILE_CACHE set, point MindSpore's compile cache at this configuration's folder before the first
    step compiles; returns the line that says what it does, or None when off."""
    base = os.environ.get(ENV, "")
    if not base:
        if os.environ.get("MS_COMPILER_CACHE_ENABLE") == "1":
            return (f"warning: MS_COMPILER_CACHE_ENABLE=1 reuses a graph whenever the Python files are unchanged, "
                    f"even for another class count or image size; set {ENV}=DIR instead (one folder per configuration)")
        return None
    folder = os.path.join(os.path.abspath(base), graph_key(cfg, step_cell, facts))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        return f"compile cache: off ({ENV} '{base}' cannot be written: {exc.strerror})"
    if not _lock(folder + ".lock"):
        return f"compile cache: off for this run ('{folder}' is in use by another run of this configuration)"
    reuse = any(name.startswith("rank_") for name in os.listdir(folder))  # MindSpore's rank_<RANK_ID>/
    os.environ["MS_COMPILER_CACHE_ENABLE"] = "1"
    os.environ["MS_COMPILER_CACHE_PATH"] = folder
    if reuse:
        return f"compile cache: using the graph an earlier run of this configuration kept in '{folder}'"
    return f"compile cache: this run's graph is kept in '{folder}' for later runs of this configuration"
