"""The network eval.py, export.py and predict.py run: the checkpoint loaded strictly, BatchNorm folded, eval mode;
or, for eval.py --model_file, an exported MINDIR/ONNX file run as it will be served."""
from __future__ import annotations

import os
from typing import Dict, Optional, Sequence, Set, Tuple

import numpy as np

from ..config import Option, aliases_of, canonical_key, split_cli
from ..errors import UserError
from ..fileio import first_line
from ..weights.checkpoint import checkpoint_num_classes, entry_shapes, read_checkpoint_shapes


def command_line_keys(argv: Sequence[str], extra: Optional[Dict[str, Option]] = None) -> Set[str]:
    """Canonical names of the options given on the command line (to tell a user's choice from a default)."""
    return {canonical_key(k, "command line", tuple(extra or ()), aliases_of("eval")) for k, _ in split_cli(argv)
            if k not in ("config_path", "config")}


def settle_num_classes(cfg, argv: Sequence[str], extra: Optional[Dict[str, Option]], stored: Optional[int]) -> None:
    """cfg.num_classes from the checkpoint's `stored` class count when --num_classes is not on the command line; with
    the flag, a mismatch is a UserError. Run on the names and shapes before MindSpore loads (eval/predict/export),
    and again on the entries as loaded (a MindCV/ModelZoo file's head has other names until converted)."""
    if stored and "num_classes" not in command_line_keys(argv, extra):
        cfg.num_classes = stored
    elif stored and stored != cfg.num_classes:  # refused before the network is built
        raise UserError(f"checkpoint '{cfg.checkpoint_path}' has {stored} classes but --num_classes "
                        f"{cfg.num_classes} was given; pass --num_classes {stored} or leave it out")


def check_checkpoint_file(cfg, argv: Sequence[str], extra: Optional[Dict[str, Option]] = None) -> None:
    """What eval/predict/export can tell from cfg.checkpoint_path's names and shapes before MindSpore loads: that it
    exists and is a checkpoint, and its class count against --num_classes (cfg.num_classes set from it)."""
    settle_num_classes(cfg, argv, extra, checkpoint_num_classes(read_checkpoint_shapes(cfg.checkpoint_path)))


def load_inference_network(cfg, argv: Sequence[str], extra: Optional[Dict[str, Option]] = None):
    """The network of cfg.arch with cfg.checkpoint_path loaded strictly, in eval mode, BatchNorm folded into the convs
    (common.models.bn_fold: same logits, fewer kernels; eval, predict and export all use it).

    Without --num_classes on the command line the class count is the checkpoint's own (a 10-class fine-tuned
    checkpoint needs no flag); cfg.num_classes is updated to it. With the flag, a mismatch is a clear error.
    """
    from ..models import create_model
    from ..models.bn_fold import fold_batchnorm
    from ..models.registry import padding_of, with_padding
    from ..weights.checkpoint import load_checkpoint_strict, read_checkpoint
    from ..weights.mindspore_import import import_if_foreign

    if not cfg.checkpoint_path:
        raise UserError("--checkpoint_path is not set; pass the .ckpt file to load")
    params, note = import_if_foreign(read_checkpoint(cfg.checkpoint_path), cfg.arch, cfg.checkpoint_path)
    if note:
        print(note, flush=True)
    # the padding the checkpoint records, unless --pool_padding overrides it (to measure what it is worth)
    padding = cfg.get("pool_padding") or padding_of(params)
    params = with_padding(params, padding)
    settle_num_classes(cfg, argv, extra, checkpoint_num_classes(entry_shapes(params)))
    if cfg.get("use_ema"):  # the weight averages of a run with --ema_decay (common.training.ema)
        from ..training.ema import ema_params

        params = ema_params(params, cfg.checkpoint_path)
    net = create_model(cfg.arch, num_classes=cfg.num_classes, pool_padding=padding, init_weights=False)
    load_checkpoint_strict(net, cfg.checkpoint_path, params)
    return fold_batchnorm(net)


MODEL_FILE_SUFFIXES = (".mindir", ".onnx")


class _Logits:
    """What a MindSpore call returns, for the ONNX runner: `.asnumpy()`."""

    def __init__(self, array: np.ndarray) -> None:
        self._array = array

    def asnumpy(self) -> np.ndarray:
        return self._array


class ModelFileNet:
    """An exported MINDIR (mindspore GraphCell) or ONNX (onnxruntime) file, called like the network it came from.

    `batch_size` is the file's batch (-1 when the batch axis is dynamic) and `num_classes` its output width, both read
    from the file's own shape records.
    """

    training = False

    def __init__(self, path: str) -> None:
        self.path = path
        if path.lower().endswith(".onnx"):
            try:
                import onnxruntime as ort
            except ImportError:
                raise UserError(f"evaluating '{path}' needs onnxruntime, which is not installed; "
                                f"pip install onnxruntime (or evaluate the .mindir or the checkpoint)") from None
            try:
                self._session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
            except Exception as exc:  # onnxruntime raises its own classes for a bad file
                raise UserError(f"'{path}' is not a readable ONNX model ({first_line(exc)}); export it again") from None
            inp, out = self._session.get_inputs()[0], self._session.get_outputs()[0]
            self._input = inp.name
            shape_in, shape_out = inp.shape, out.shape
        else:
            import mindspore as ms

            shape_in, shape_out = _mindir_shapes(path)
            try:
                self._graph = ms.nn.GraphCell(ms.load(path))
            except (RuntimeError, ValueError) as exc:
                raise UserError(f"'{path}' is not a loadable MINDIR ({first_line(exc)}); export it again") from None
            self._session = None
        self.batch_size = shape_in[0] if isinstance(shape_in[0], int) and shape_in[0] > 0 else -1
        self.input_hw = tuple(int(d) for d in shape_in[2:4]) if len(shape_in) == 4 else ()
        self.num_classes = int(shape_out[-1]) if shape_out and isinstance(shape_out[-1], int) else 0

    def set_train(self, mode: bool = True) -> None:
        """An exported graph is always in eval mode; kept so evaluation code can treat it as a network."""

    def __call__(self, images):
        if self._session is None:
            return self._graph(images)
        array = images.asnumpy() if hasattr(images, "asnumpy") else np.asarray(images)
        return _Logits(self._session.run(None, {self._input: array.astype(np.float32)})[0])


def _mindir_shapes(path: str) -> Tuple[list, list]:
    """(input dims, output dims) recorded in a MINDIR file (-1 for a dynamic axis)."""
    from google.protobuf.message import DecodeError
    from mindspore.train import mind_ir_pb2

    model = mind_ir_pb2.ModelProto()
    try:
        with open(path, "rb") as fh:
            model.ParseFromString(fh.read())
        return list(model.graph.input[0].tensor[0].dims), list(model.graph.output[0].tensor[0].dims)
    except (OSError, IndexError, DecodeError) as exc:
        raise UserError(f"'{path}' is not a readable MINDIR file ({first_line(exc)}); export it again") from None


def check_model_file(path: str) -> None:
    """Refuse a path that is not an existing .mindir/.onnx file, with one line."""
    if not path.lower().endswith(MODEL_FILE_SUFFIXES):
        raise UserError(f"--model_file '{path}' is neither .mindir nor .onnx; pass a file written by export.py "
                        f"(AIR files run on Ascend with the ACL tools, not here)")
    if not os.path.isfile(path):
        raise UserError(f"--model_file '{path}' does not exist; pass the file export.py wrote")


def load_model_file(path: str) -> ModelFileNet:
    """The exported file at `path` (.mindir or .onnx) as a callable network; a missing or other file is a UserError."""
    check_model_file(path)
    return ModelFileNet(path)
