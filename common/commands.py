"""The command line of each entry point (train, eval, export, predict): its usage line, its own options beside
common.config's SCHEMA, and the module that runs it.

Kept apart from those modules, and light (no MindSpore), so that common.entry resolves the config (and answers
-h/--help or a wrong option with one line) before it imports the command, which imports MindSpore: seconds here,
longer on a CANN image.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

from .config import Option

TRAIN_USAGE = ("usage: python <model>/train.py --data_dir DIR --device_target {Ascend,GPU,CPU} --output_dir OUT "
               "[--<any option> VALUE] [--config_path FILE]")

EVAL_OPTIONS: Dict[str, Option] = {
    "model_file": Option("", "str", "evaluate this exported .mindir or .onnx file (export.py) instead of "
                                    "--checkpoint_path"),
}
EVAL_USAGE = ("usage: python <model>/eval.py --data_dir DIR {--checkpoint_path CKPT | --model_file X.mindir|X.onnx} "
              "--device_target {Ascend,GPU,CPU} [--batch_size N] [--eval_preset P] [--output_dir D] "
              "[--<any option> VALUE]")

EXPORT_OPTIONS: Dict[str, Option] = {
    # export's batch may be -1 (dynamic); the schema's batch_size (> 0) is replaced for this command only
    "batch_size": Option(1, "int", "batch of the exported graph (-1 = dynamic, as --dynamic_batch true)",
                         check=lambda v: v > 0 or v == -1, need="> 0 or -1"),
    "dynamic_batch": Option(False, "bool", "leave the batch axis open (ONNX: symbolic 'batch'; MINDIR: -1; not AIR)"),
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
EXPORT_USAGE = ("usage: python <model>/export.py --checkpoint_path CKPT --file_format {AIR,ONNX,MINDIR} "
                "--file_name NAME [--batch_size 1|-1] [--dynamic_batch true] [--eval_preset P] [--height 224] "
                "[--width 224] [--device_target T] [--num_classes N] [--softmax true]")

PREDICT_OPTIONS: Dict[str, Option] = {
    "image": Option("", "str", "image file, or a folder whose images (searched recursively) are all classified"),
    "top": Option(5, "int", "how many classes to print per image", check=lambda v: v > 0, need="> 0"),
    "labels": Option("", "str", "class names: JSON list or text file with one name a line, in label order"),
    "output": Option("text", "str", "output format on stdout", choices=("text", "csv", "json")),
}
PREDICT_USAGE = ("usage: python <model>/predict.py --checkpoint_path CKPT --image PATH_OR_DIR [--top 5] "
                 "[--labels FILE] [--device_target T] [--output text|csv|json]")


@dataclass(frozen=True)
class Command:
    """One entry point: `module` exposes run(model, cfg, argv) -> exit status; `options` are its own beside SCHEMA;
    `preflight` ("module:function", no MindSpore) checks the resolved config before `module` is imported."""

    module: str
    usage: str
    options: Optional[Dict[str, Option]] = None
    preflight: str = ""


COMMANDS: Dict[str, Command] = {
    "train": Command("common.training.loop", TRAIN_USAGE, preflight="common.training.preflight:prepare_train"),
    "eval": Command("common.inference.evaluate", EVAL_USAGE, EVAL_OPTIONS),
    "export": Command("common.inference.export", EXPORT_USAGE, EXPORT_OPTIONS),
    "predict": Command("common.inference.predict", PREDICT_USAGE, PREDICT_OPTIONS),
}
# MindCV's name of a command -> the zoo's (validate.py in a model folder runs eval)
COMMAND_NAMES = {"validate": "eval"}
