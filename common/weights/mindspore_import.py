"""Map MindCV and ModelZoo MindSpore checkpoints onto the zoo's network (README "Coming from ModelZoo / MindCV").

Known layouts (source -> this zoo's names):

- MindCV ResNeXt: `layerN.i.down_sample.{0,1}` -> `downsample.{0,1}`, `classifier.` -> `fc.`.
- MindCV ResNeSt: this zoo's (timm's) names already; only the pooling differs, so `--from mindcv` names it.
- ModelZoo resnext152_64x4d: optional `network.` prefix, `backbone.conv`/`backbone.bn` -> `conv1`/`bn1`,
  `backbone.layerN.i.` -> `layerN.i.`, `down_sample.conv/bn` -> `downsample.0/1`, `head.fc.` -> `fc.`; a grouped
  conv saved on Ascend as per-group convs `conv2.convs.<g>.weight` is concatenated on the output axis.
- ModelZoo ResNeSt50: the split-attention conv as per-group convs `conv2.conv.convs.<g>.weight` (concatenated) and
  `conv2.fc{1,2}.convs.0.weight` without bias (bias 0).

Training state (optimizer moments, LR, step counters, loss scale, EMA copies) is dropped, or the EMA weights are
taken with `ema=True`; float16 becomes float32. MindCV's networks and the ModelZoo's ResNeXt pool with MindSpore's
pad_mode="same", so their result records pool_padding 'same' (common.models.resnet.PADDING_KEY); the ModelZoo's
ResNeSt50 pads symmetrically and pools "valid", as timm does, so it converts with the default padding.
"""
from __future__ import annotations

import re
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..errors import UserError
from ..models import create_model
from ..models.resnet import PADDING_KEY
from .checkpoint import describe_misfit, network_param_names

SOURCES = ("mindcv", "modelzoo")
# Names of training state in MindCV/ModelZoo checkpoints (optimizer, schedule, loss scale, EMA, counters).
DROP_PREFIXES = ("moments.", "accum.", "adam_m.", "adam_v.", "learning_rate", "momentum", "global_step",
                 "scale_sense", "updates", "ema.", "current_iterator_step", "last_overflow_iterator_step",
                 "epoch_num", "step_num", "beta1_power", "beta2_power")
_GROUP_CONV = re.compile(r"^(?P<conv>.+)\.convs\.(?P<g>\d+)\.weight$")
_RENAMES: Tuple[Tuple[str, str], ...] = (
    (r"^backbone\.conv\.", "conv1."), (r"^backbone\.bn\.", "bn1."), (r"^backbone\.", ""), (r"^head\.", ""),
    (r"\.down_sample\.conv\.", ".downsample.0."), (r"\.down_sample\.bn\.", ".downsample.1."),
    (r"\.down_sample\.", ".downsample."), (r"^classifier\.", "fc."),
)


def detect_source(keys) -> Optional[str]:
    """'modelzoo' or 'mindcv' when the key names show that layout, else None (this zoo's own names)."""
    keys = list(keys)
    if any(k.startswith(("backbone.", "network.backbone.", "head.")) or ".convs." in k for k in keys):
        return "modelzoo"
    if any(k.startswith("classifier.") or ".down_sample." in k for k in keys):
        return "mindcv"
    return None


def _as_array(value) -> np.ndarray:
    return value.asnumpy() if hasattr(value, "asnumpy") else np.asarray(value)


def rename(params: Dict[str, np.ndarray], ema: bool = False) -> Tuple[Dict[str, np.ndarray], List[str]]:
    """(this zoo's names -> float32 arrays, dropped training-state names). Per-group convs are concatenated and
    bias-free attention convs get a zero bias."""
    if ema:
        if not any(k.startswith("ema.") for k in params):
            raise UserError("--ema asks for the EMA weights, but the checkpoint holds no 'ema.' entries")
        params = {k[len("ema."):]: v for k, v in params.items() if k.startswith("ema.")}
    weights, dropped = {}, []
    for key, value in params.items():
        name = key[len("network."):] if key.startswith("network.") else key
        if name.startswith(DROP_PREFIXES) or key.startswith(DROP_PREFIXES):
            dropped.append(key)
            continue
        for pattern, repl in _RENAMES:
            name = re.sub(pattern, repl, name)
        weights[name] = _as_array(value)
    groups: Dict[str, Dict[int, np.ndarray]] = {}
    out: Dict[str, np.ndarray] = {}
    for name, value in weights.items():
        match = _GROUP_CONV.match(name)
        if match:
            groups.setdefault(match.group("conv"), {})[int(match.group("g"))] = value
        else:
            out[name] = value
    for conv, parts in groups.items():
        if sorted(parts) != list(range(len(parts))):
            raise UserError(f"per-group convs of '{conv}' are incomplete: groups {sorted(parts)} found")
        out[f"{conv}.weight"] = np.concatenate([parts[g] for g in range(len(parts))], axis=0)
        if re.search(r"\.fc[12]$", conv) and f"{conv}.bias" not in out:
            out[f"{conv}.bias"] = np.zeros(out[f"{conv}.weight"].shape[0], np.float32)  # saved without bias
    return {k: v.astype(np.float32) if v.dtype == np.float16 else v for k, v in out.items()}, dropped


def source_padding(source: str, arch: str) -> str:
    """The pooling of the network that wrote a `source` checkpoint of `arch` (see the module doc)."""
    return "symmetric" if source == "modelzoo" and arch.startswith("resnest") else "same"


def convert_mindspore(arch: str, params: Dict[str, object], source: Optional[str] = None, ema: bool = False
                      ) -> Tuple[Dict[str, np.ndarray], int, str]:
    """({zoo name: array, with the padding marker where the source pools 'same'}, num_classes, source) of a
    MindCV/ModelZoo checkpoint.

    `source` ('mindcv'/'modelzoo') overrides the detection from the key names; a checkpoint in this zoo's names with
    no source given is an error (nothing to convert). Every key must find its place: leftovers and missing names are
    one UserError naming them (common.weights.checkpoint.describe_misfit).
    """
    found = detect_source(params)
    source = source or found
    if source is None:
        raise UserError("the checkpoint already has this zoo's parameter names; load it as it is, or pass --from "
                        "mindcv|modelzoo if it comes from there (MindCV ResNeSt-50 has the same names)")
    if source not in SOURCES:
        raise UserError(f"unknown source '{source}'; choose one of: {', '.join(SOURCES)}")
    weights, _ = rename(params, ema)
    weights.pop(PADDING_KEY, None)
    head = weights.get("fc.weight")
    if head is None or head.ndim != 2:
        raise UserError(f"the {source} checkpoint has no 2-D classifier weight (classifier./head.fc./fc.weight); it "
                        f"is not a ResNeXt/ResNeSt checkpoint")
    num_classes = int(head.shape[0])
    padding = source_padding(source, arch)
    targets = network_param_names(create_model(arch, num_classes=num_classes, pool_padding=padding,
                                                init_weights=False))
    targets.pop(PADDING_KEY, None)
    unused = sorted(k for k in weights if k not in targets)
    missing = sorted(k for k in targets if k not in weights)
    reshaped = [f"{k} {tuple(weights[k].shape)} vs {targets[k]}" for k in targets
                if k in weights and tuple(weights[k].shape) != targets[k]]
    problems = describe_misfit(missing, unused, reshaped, missing_label=f"{arch} parameter(s) not in the source",
                               unexpected_label=f"source key(s) with no place in {arch}")
    if problems:
        raise UserError(f"the {source} checkpoint does not fit --arch {arch}: {problems}")
    out = {k: weights[k] for k in targets}
    if padding == "same":
        out[PADDING_KEY] = np.ones(1, np.int32)
    return out, num_classes, source


def import_if_foreign(params: Dict[str, object], arch: str, path: str
                      ) -> Tuple[Dict[str, object], Optional[str]]:
    """(entries, note): a checkpoint in MindCV/ModelZoo names converted to MindSpore Parameters in this zoo's names
    with a one-line note saying so; any other checkpoint unchanged with no note. For --pretrained/--checkpoint_path."""
    if detect_source(params) is None:
        return params, None
    import mindspore as ms

    out, _, source = convert_mindspore(arch, params)
    note = (f"note: '{path}' is a {source} checkpoint: converted to this zoo's names on the fly with pool_padding "
            f"'{source_padding(source, arch)}' (scripts/convert_weights.py --src {path} writes the converted file "
            f"once)")
    return {k: ms.Parameter(ms.Tensor(v), name=k, requires_grad=k != PADDING_KEY) for k, v in out.items()}, note
