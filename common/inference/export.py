"""Export a checkpoint as an inference graph: MINDIR and ONNX anywhere, AIR on Ascend.

    python <model>/export.py --checkpoint_path CKPT --file_format MINDIR --file_name resnext50 \
        [--batch_size 1 --height 224 --width 224 --device_target CPU --num_classes N --softmax true]

The graph is the network in eval mode (BN uses its moving statistics, no dropout), optionally followed by a
softmax, with one float32 NCHW input named `image`. The file is written under a temporary name and renamed, so a
failed export never leaves a half-written file under the final name. Beside it, `<name>.preprocess.json` records
the preprocessing a server must apply (common.data.presets: preset, resize, crop, interpolation, mean/std), and
eval.py --model_file reads it back.

`--batch_size -1` (or `--dynamic_batch true`) leaves the batch axis open. MINDIR: traced with a None batch, which
MindSpore 2.8 supports. ONNX: MindSpore 2.8 refuses dynamic shapes ("Export ONNX format model not support dynamic
shape mode"), so the graph is traced at batch 7, the zero tensors the max-pool padding concatenates are turned into
Pad nodes, and the input and output batch dimension renamed to the symbol `batch`, after checking that no constant
(a Reshape target, say) still holds the traced batch. AIR keeps a fixed batch.
"""
from __future__ import annotations

import os
from typing import Dict, Sequence

import numpy as np

from ..commands import EXPORT_OPTIONS as OPTIONS
from ..data.presets import apply_recorded, resolve_preset, write_record
from ..errors import UserError
from ..fileio import atomic_write, check_writable_folder
from ..weights.checkpoint import read_checkpoint_shapes
from .network import check_checkpoint_file, command_line_keys, load_inference_network

FORMATS = {"MINDIR": ".mindir", "ONNX": ".onnx", "AIR": ".air"}


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


# ONNX is traced at this batch when the batch axis is to be dynamic: a prime no layer of these networks has as its
# first dimension, so a constant still carrying it after the rewrite below is found and refused
TRACE_BATCH = 7
# ops whose second and later inputs are weights (a 7-class head's bias is no batch)
_WEIGHT_OPS = ("Conv", "Gemm", "MatMul", "BatchNormalization")


def _constants(graph) -> Dict[str, np.ndarray]:
    """Initializers and Constant-node outputs of an ONNX graph, by name."""
    from onnx import numpy_helper

    found = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            found[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return found


def _zero_concats_to_pads(model) -> None:
    """Concat(zeros, x, zeros) -> Pad(x): the zoo's ZeroPadPool pads with zero tensors traced at a fixed batch."""
    from onnx import helper, numpy_helper

    graph, consts = model.graph, _constants(model.graph)
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=11)
    for index, node in enumerate(list(graph.node)):
        fixed = [i for i in node.input if i in consts]
        moving = [i for i in node.input if i not in consts]
        if node.op_type != "Concat" or len(moving) != 1 or not fixed or any(consts[i].any() for i in fixed):
            continue
        rank = consts[fixed[0]].ndim
        axis = helper.get_attribute_value(node.attribute[0]) % rank
        at = list(node.input).index(moving[0])
        pads = [0] * (2 * rank)
        pads[axis] = sum(consts[i].shape[axis] for i in node.input[:at])
        pads[rank + axis] = sum(consts[i].shape[axis] for i in node.input[at + 1:])
        if opset >= 11:
            graph.initializer.append(numpy_helper.from_array(np.array(pads, np.int64), f"{node.name}_pads"))
            pad = helper.make_node("Pad", [moving[0], f"{node.name}_pads"], list(node.output), name=f"{node.name}_pad")
        else:
            pad = helper.make_node("Pad", [moving[0]], list(node.output), name=f"{node.name}_pad", pads=pads)
        graph.node.remove(node)
        graph.node.insert(index, pad)
    used = {i for node in graph.node for i in node.input}
    for node in [n for n in graph.node if n.op_type == "Constant" and n.output[0] not in used]:
        graph.node.remove(node)
    for tensor in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(tensor)


def make_onnx_batch_dynamic(path: str, name: str = "batch") -> None:
    """Rename the first dimension of the ONNX file's inputs and outputs (traced at TRACE_BATCH) to the symbol `name`,
    after turning zero-padding concats into Pad nodes; refuses (UserError) a graph that still holds a constant of the
    traced batch (a Reshape target, say), which would break at any other batch."""
    try:
        import onnx
    except ImportError:
        raise UserError("a dynamic-batch ONNX export needs the onnx package; pip install onnx, or export with a fixed "
                        "--batch_size") from None
    model = onnx.load(path)
    _zero_concats_to_pads(model)
    weights = {i for node in model.graph.node if node.op_type in _WEIGHT_OPS for i in node.input[1:]}
    for key, value in _constants(model.graph).items():
        if key not in weights and value.ndim and value.shape[0] == TRACE_BATCH or (
                value.ndim == 1 and value.dtype.kind == "i" and value.size and value[0] == TRACE_BATCH):
            raise UserError(f"the ONNX graph holds a constant tied to the batch ('{key}', shape {list(value.shape)});"
                            f" export ONNX with a fixed --batch_size, or MINDIR with --dynamic_batch true")
    for value in (*model.graph.input, *model.graph.output):
        dim = value.type.tensor_type.shape.dim[0]
        dim.ClearField("dim_value")
        dim.dim_param = name
    del model.graph.value_info[:]
    onnx.checker.check_model(model)
    onnx.save(model, path)


def export_network(cell, file_name: str, file_format: str, batch_size: int, height: int, width: int) -> str:
    """Trace `cell` on a zero batch of the given shape (batch -1: the batch axis left open) and write it; returns the
    path written."""
    import mindspore as ms

    suffix = FORMATS[file_format]
    path = export_path(file_name, file_format)
    check_writable_folder(os.path.dirname(path), "--file_name folder")
    if batch_size == -1 and file_format == "MINDIR":
        dummy = ms.Tensor(shape=[None, 3, height, width], dtype=ms.float32)
    else:
        dummy = ms.Tensor(np.zeros((TRACE_BATCH if batch_size == -1 else batch_size, 3, height, width), np.float32))

    def write(tmp: str) -> None:  # MindSpore appends the suffix itself: give it the name without
        ms.export(cell, dummy, file_name=tmp[:-len(suffix)], file_format=file_format)
        if batch_size == -1 and file_format == "ONNX":
            make_onnx_batch_dynamic(tmp)

    return atomic_write(path, write, "file", "choose a writable --file_name", suffix=suffix)


def run(model, cfg, argv: Sequence[str]) -> int:
    """<model>/export.py: the checkpoint's inference graph as a MINDIR, ONNX or AIR file, and its preprocessing."""
    fmt = check_format(cfg.file_format, cfg.device_target)
    given = command_line_keys(argv, OPTIONS)
    if "batch_size" not in given:
        cfg.batch_size = 1  # the recipe's training batch is no default for a deployed graph
    if cfg.dynamic_batch:
        cfg.batch_size = -1
    if cfg.batch_size == -1 and fmt == "AIR":
        raise UserError("AIR is exported with a fixed batch here; pass --batch_size N, or export MINDIR/ONNX with "
                        "--dynamic_batch true")
    height, width = cfg.height or cfg.image_size, cfg.width or cfg.image_size
    # before the network is built and traced
    check_writable_folder(os.path.dirname(export_path(cfg.file_name or cfg.arch, fmt)), "--file_name folder")
    if not cfg.checkpoint_path:
        raise UserError("--checkpoint_path is not set; pass the .ckpt file to export")
    if cfg.features_only:  # no head: only whether the file is a checkpoint
        read_checkpoint_shapes(cfg.checkpoint_path)
    else:
        check_checkpoint_file(cfg, argv, OPTIONS)
    apply_recorded(cfg, cfg.checkpoint_path, given)  # a converted checkpoint's preset travels on to the server
    preset = resolve_preset(cfg.eval_preset or "zoo", height, cfg.crop_pct, cfg.interpolation, cfg.eval_backend)

    from ..context import init_context
    from ..cpu_ops import native_ops
    from .inference_cell import inference_cell

    # export traces a graph whatever --mode says, and only of native operators: the zoo's custom CPU operators
    # (common.cpu_ops) would not survive into MINDIR/ONNX/AIR
    init_context(cfg.device_target, "graph", cfg.jit_level, cfg.device_id, distributed=False)
    with native_ops():
        net = load_features_network(cfg) if cfg.features_only else load_inference_network(cfg, argv, OPTIONS)
    path = export_network(inference_cell(net, cfg.softmax and not cfg.features_only), cfg.file_name or cfg.arch,
                          fmt, cfg.batch_size, height, width)
    outputs = (dict(features=net.feature_info.module_name()) if cfg.features_only
               else dict(num_classes=cfg.num_classes, softmax=bool(cfg.softmax)))
    side = write_record(path, preset, input="exported", input_name="image", input_size=[height, width],
                        arch=cfg.arch, **outputs)
    what = (f"feature maps of {net.feature_info.module_name()}" if cfg.features_only
            else f"{cfg.num_classes} classes{', softmax' if cfg.softmax else ''}")
    batch = "dynamic batch" if cfg.batch_size == -1 else str(cfg.batch_size)
    print(f"exported {cfg.arch} ({what}, input 'image' {batch}x3x{height}x{width}) to {path}; preprocessing "
          f"({preset.name}) in {side}", flush=True)
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
