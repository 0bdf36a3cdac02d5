"""Export a checkpoint as an inference graph: MINDIR and ONNX anywhere, AIR on Ascend.

    python <model>/export.py --checkpoint_path CKPT --file_format MINDIR --file_name resnext50 \
        [--batch_size 1 --height 224 --width 224 --device_target CPU --num_classes N --softmax true]

The graph is the network in eval mode (BN uses its moving statistics, no dropout), optionally followed by a
softmax, with one float32 NCHW input named `image`. The file is written under a temporary name and renamed, so a
failed export never leaves a half-written file under the final name.
"""
from __future__ import annotations

import os
from typing import Dict, Sequence

import mindspore as ms
import numpy as np
from mindspore import nn

from ..config import Option
from ..errors import UserError
from ..fileio import atomic_write, check_writable_folder
from .network import command_line_keys, load_inference_network

FORMATS = {"MINDIR": ".mindir", "ONNX": ".onnx", "AIR": ".air"}
OPTIONS: Dict[str, Option] = {
    "file_format": Option("MINDIR", "str", "export format: MINDIR or ONNX anywhere, AIR on Ascend only"),
    "file_name": Option("", "str", "output file, suffix added when missing ('' = the arch name)"),
    "height": Option(0, "int", "input height in pixels (0 = image_size)", check=lambda v: v >= 0, need=">= 0"),
    "width": Option(0, "int", "input width in pixels (0 = image_size)", check=lambda v: v >= 0, need=">= 0"),
    "softmax": Option(False, "bool", "append a softmax so the graph outputs probabilities"),
    # --- features_only graphs (issue 18) ---
    "features_only": Option(False, "bool", "export the backbone's feature maps (no head) instead of the logits"),
    "out_indices": Option([1, 2, 3, 4], "int_list", "with features_only: stages whose maps are outputs (0 stem, "
                                                    "1-4 layer1-4 at strides 4/8/16/32)"),
}
USAGE = ("usage: python <model>/export.py --checkpoint_path CKPT --file_format {AIR,ONNX,MINDIR} --file_name NAME "
         "[--batch_size 1] [--height 224] [--width 224] [--device_target T] [--num_classes N] [--softmax true]")


class InferenceNet(nn.Cell):
    """Classifier logits (or probabilities with `with_softmax`) for a batch of normalised NCHW images."""

    def __init__(self, backbone: nn.Cell, with_softmax: bool = False) -> None:
        super().__init__()
        self.backbone = backbone
        self.with_softmax = with_softmax
        self.softmax = nn.Softmax(axis=-1)

    def construct(self, image):
        out = self.backbone(image)
        if self.with_softmax:
            out = self.softmax(out)
        return out


def inference_cell(net: nn.Cell, softmax: bool = False) -> InferenceNet:
    """`net` in eval mode, optionally followed by a softmax over the classes; its input is named `image`."""
    cell = InferenceNet(net, softmax)
    cell.set_train(False)
    return cell


def check_format(file_format: str, device_target: str) -> str:
    """Upper-cased format name; refuses an unknown name and AIR off Ascend, each with one line."""
    fmt = file_format.upper()
    if fmt not in FORMATS:
        raise UserError(f"--file_format {file_format!r} is not supported; use MINDIR, ONNX or AIR (Ascend only)")
    if fmt == "AIR" and device_target != "Ascend":
        raise UserError(f"AIR needs Ascend (--device_target Ascend on an Ascend machine), not {device_target}; "
                        f"use MINDIR (--file_format MINDIR) or ONNX here")
    return fmt


def export_path(file_name: str, file_format: str) -> str:
    """Absolute path of the exported file: `file_name` with the format's suffix added when missing."""
    suffix = FORMATS[file_format]
    return os.path.abspath(file_name if file_name.lower().endswith(suffix) else file_name + suffix)


def export_network(cell, file_name: str, file_format: str, batch_size: int, height: int, width: int) -> str:
    """Trace `cell` on a zero batch of the given shape and write it; returns the path written."""
    suffix = FORMATS[file_format]
    path = export_path(file_name, file_format)
    check_writable_folder(os.path.dirname(path), "--file_name folder")
    dummy = ms.Tensor(np.zeros((batch_size, 3, height, width), dtype=np.float32))

    def write(tmp: str) -> None:  # MindSpore appends the suffix itself: give it the name without
        ms.export(cell, dummy, file_name=tmp[:-len(suffix)], file_format=file_format)

    return atomic_write(path, write, "file", "choose a writable --file_name", suffix=suffix)


def run(model, cfg, argv: Sequence[str]) -> int:
    """<model>/export.py: the checkpoint's inference graph as a MINDIR, ONNX or AIR file."""
    fmt = check_format(cfg.file_format, cfg.device_target)
    if "batch_size" not in command_line_keys(argv, OPTIONS):
        cfg.batch_size = 1  # the recipe's training batch is no default for a deployed graph
    height, width = cfg.height or cfg.image_size, cfg.width or cfg.image_size
    # before the network is built and traced
    check_writable_folder(os.path.dirname(export_path(cfg.file_name or cfg.arch, fmt)), "--file_name folder")

    from ..context import init_context
    from ..cpu_ops import native_ops

    # export traces a graph whatever --mode says, and only of native operators: the zoo's custom CPU operators
    # (common.cpu_ops) would not survive into MINDIR/ONNX/AIR
    init_context(cfg.device_target, "graph", cfg.jit_level, cfg.device_id, distributed=False)
    with native_ops():
        net = load_features_network(cfg) if cfg.features_only else load_inference_network(cfg, argv, OPTIONS)
    path = export_network(inference_cell(net, cfg.softmax and not cfg.features_only), cfg.file_name or cfg.arch,
                          fmt, cfg.batch_size, height, width)
    what = (f"feature maps of {net.feature_info.module_name()}" if cfg.features_only
            else f"{cfg.num_classes} classes{', softmax' if cfg.softmax else ''}")
    print(f"exported {cfg.arch} ({what}, input 'image' {cfg.batch_size}x3x{height}x{width}) to {path}", flush=True)
    return 0


def load_features_network(cfg):
    """features_only network of cfg.arch with the classifier checkpoint's backbone loaded, BatchNorm folded."""
    from ..models import create_model
    from ..models.bn_fold import fold_batchnorm

    if not cfg.checkpoint_path:
        raise UserError("--checkpoint_path is not set; pass the .ckpt file to load")
    if cfg.use_ema:
        raise UserError("--use_ema with --features_only is not supported; export the EMA classifier (--use_ema "
                        "true without --features_only), or a checkpoint of the weights")
    return fold_batchnorm(create_model(cfg.arch, checkpoint=cfg.checkpoint_path, features_only=True,
                                       out_indices=cfg.out_indices))
