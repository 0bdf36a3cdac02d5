"""The one place that knows which MindSpore release is installed.

Calls whose name or signature changed between MindSpore 2.2.14 (the last release with the official GPU backend) and
2.10 go through the helpers below, written from those releases' documented APIs and chosen by feature detection
rather than by version number where possible, so a patched or backported build still takes the right path. Tested:
2.8.0 (the pinned release) for everything, 2.10.0 for the CPU operator tests; 2.2.14 is read, not run.
"""
from __future__ import annotations

import os
import re
from typing import Optional, Tuple

import mindspore as ms

MS_VERSION: Tuple[int, int, int] = tuple(  # type: ignore[assignment]
    int(p) for p in (re.findall(r"\d+", ms.__version__) + ["0", "0", "0"])[:3])


def set_context(mode: str = "graph", device_target: str = "CPU", device_id: Optional[int] = None,
                jit_level: Optional[str] = None) -> None:
    """Select execution mode and device.

    2.5+ has `ms.set_device`; earlier releases put device_target/device_id in `set_context`, and releases after 2.6
    warn when they are still given there. `jit_level` (O0/O1/O2) exists from 2.3 on and is ignored before.
    """
    ms_mode = ms.GRAPH_MODE if mode.lower() == "graph" else ms.PYNATIVE_MODE
    ms.set_context(mode=ms_mode)
    if device_id is None:
        device_id = int(os.environ.get("DEVICE_ID", "0"))
    if hasattr(ms, "set_device"):
        if device_target == "CPU":
            ms.set_device(device_target)
        else:
            ms.set_device(device_target, device_id)
    else:
        kwargs = {"device_target": device_target}
        if device_target != "CPU":
            kwargs["device_id"] = device_id
        ms.set_context(**kwargs)
    if jit_level and MS_VERSION >= (2, 3, 0):
        ms.set_context(jit_config={"jit_level": jit_level})


def load_param_into_net(net: ms.nn.Cell, params: dict) -> Tuple[list, list]:
    """Load params non-strictly and return (net params not loaded, checkpoint params not used).

    Older releases return only the first list; the second is derived here so callers see the same contract.
    """
    result = ms.load_param_into_net(net, params, strict_load=False)
    if isinstance(result, tuple) and len(result) == 2:
        return list(result[0]), list(result[1])
    net_names = {p.name for p in net.get_parameters()}
    return list(result or []), [k for k in params if k not in net_names]



def set_deterministic(enabled: bool = True) -> None:
    """Deterministic kernels: `ms.set_deterministic` from 2.5 on, `set_context(deterministic="ON")` before.

    Call it before `init()` so that the communication operators are covered too.
    """
    if hasattr(ms, "set_deterministic"):
        ms.set_deterministic(enabled)
    else:
        ms.set_context(deterministic="ON" if enabled else "OFF")
