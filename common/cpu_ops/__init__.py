"""The zoo's CPU operators, and every decision about where they run (one place, as timm keeps its layer switches).

Four families of MindSpore AOT custom operators make CPU training and inference faster than MindSpore's own kernels
(figures in benchmarks/RESULTS.md; sources in csrc/, built by `library`):

| family (module)                 | switch (env var, "0" = off) | replaces                                           |
|---------------------------------|-----------------------------|----------------------------------------------------|
| grouped conv (`conv`)           | ZOO_ONEDNN_CONV             | nn.Conv2d with group > 1, through oneDNN 3.x        |
| BatchNorm [+ add] + ReLU        | ZOO_FUSED_BN                | BN forward/gradient and the ReLU after it in        |
| (`batchnorm`, `epilogue`)       |                             | training; BiasAdd [+ Add] + ReLU after a folded BN  |
| split attention                 | ZOO_FUSED_ATTENTION         | ResNeSt radix-2 pooling and weighted sum            |
| (`split_attention`)             |                             |                                                     |
| momentum SGD (`momentum`)       | ZOO_FUSED_MOMENTUM          | nn.Momentum's decay + update kernels                |

They apply only on the CPU backend, with float32 data, when the library could be built (g++ and the oneDNN 3.x
wheels), with their switch not off, and outside a `native_ops()` block (export opens one: deployment graphs hold
only MindSpore's operators). Ascend and GPU never build or load them. Each decision is taken when a layer or the
optimizer is built, so a switch changed later in the same process affects only networks built after the change.
"""
from __future__ import annotations

import contextlib
import os
from typing import Iterator, Sequence

from .library import library_path

SWITCHES = ("ZOO_ONEDNN_CONV", "ZOO_FUSED_BN", "ZOO_FUSED_ATTENTION", "ZOO_FUSED_MOMENTUM")

_native_only = False


def switch_on(value: str) -> bool:
    """False for the usual spellings of off (0, false, no, off)."""
    return value.strip().lower() not in ("0", "false", "no", "off")


@contextlib.contextmanager
def switched(switch: str, value: str) -> Iterator[None]:
    """The environment switch `switch` set to `value` inside this block, the process's value restored after (an A/B
    of a switch that is read when a layer, an optimizer or a batch is made)."""
    before = os.environ.get(switch)
    os.environ[switch] = value
    try:
        yield
    finally:
        if before is None:
            del os.environ[switch]
        else:
            os.environ[switch] = before


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


def backend_allows(device_target: str, switch_value: str = "1") -> bool:
    """The policy, library aside: the CPU backend and the switch's value not off."""
    return switch_on(switch_value) and device_target == "CPU"


def kernels_enabled(switch: str) -> bool:
    """Whether one family (named by its switch) runs in layers built now: `backend_allows` for the current backend
    and the switch's environment value, outside a `native_ops()` block, with the library built here."""
    import mindspore as ms

    if switch not in SWITCHES:
        raise ValueError(f"unknown CPU operator switch {switch!r}; one of {SWITCHES}")
    if native_only() or not backend_allows(ms.get_context("device_target"), os.environ.get(switch, "1")):
        return False
    return library_path() is not None


def use_onednn_conv(groups: int) -> bool:
    """For one conv of the backbone: grouped (dense convs stay MindSpore's, faster there) and the family on."""
    return groups > 1 and kernels_enabled("ZOO_ONEDNN_CONV")


def use_fused_bn() -> bool:
    """For one BN of the backbone, or the epilogue a folded BN leaves."""
    return kernels_enabled("ZOO_FUSED_BN")


def use_fused_attention() -> bool:
    """For one radix-2 split-attention block."""
    return kernels_enabled("ZOO_FUSED_ATTENTION")


def use_fused_momentum(params: Sequence) -> bool:
    """For one optimizer: float32 parameters only (AMP O3 keeps float16 weights)."""
    import mindspore as ms

    return all(p.dtype == ms.float32 for p in params) and kernels_enabled("ZOO_FUSED_MOMENTUM")


__all__ = ["SWITCHES", "backend_allows", "kernels_enabled", "library_path", "native_ops", "native_only", "switch_on",
           "use_fused_attention", "use_fused_bn", "use_fused_momentum", "use_onednn_conv"]
