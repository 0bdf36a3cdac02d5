"""MindCV's training/validation yaml (`--config`/`-c FILE`) read as options of this zoo.

A MindCV config is a flat mapping that also configures things this zoo has no knob for (its optimizer zoo, EMA, data
set downloads). Keys with an equivalent are translated (MINDCV_KEYS, with value translations where the vocabularies
differ); every other key is listed once, by name, in a `note:` line on stdout and otherwise ignored, so a MindCV
config runs as written and the user sees what did not carry over. A value that does not convert is a UserError.
"""
from __future__ import annotations

from typing import Any, Dict

from .config import read_yaml

# MindCV key -> this zoo's option (None: accepted without effect, as it is this zoo's behaviour already).
MINDCV_KEYS: Dict[str, Any] = {
    "mode": "mode", "distribute": "distribute", "num_parallel_workers": "num_parallel_workers",
    "data_dir": "data_dir", "batch_size": "batch_size", "image_resize": "image_size", "crop_pct": "crop_pct",
    "hflip": "hflip", "color_jitter": "color_jitter", "interpolation": "interpolation",
    "auto_augment": "auto_augment", "re_prob": "re_prob", "mixup": "mixup", "cutmix": "cutmix",
    "cutmix_prob": "mixup_prob", "model": "arch", "num_classes": "num_classes", "drop_rate": "drop_rate",
    "keep_checkpoint_max": "keep_checkpoint_max", "ckpt_save_dir": "output_dir", "epoch_size": "epoch_size",
    "dataset_sink_mode": "dataset_sink_mode", "amp_level": "amp_level", "label_smoothing": "label_smooth_factor",
    "scheduler": "lr_scheduler", "min_lr": "lr_min", "lr": "lr", "warmup_epochs": "warmup_epochs",
    "momentum": "momentum", "weight_decay": "weight_decay", "use_nesterov": "nesterov", "loss_scale": "loss_scale",
    "loss_scale_type": "loss_scale_type", "val_while_train": "run_eval", "val_interval": "eval_interval",
    "log_interval": "log_interval", "seed": "seed", "filter_bias_and_bn": "decay_bn_and_bias",
    "ckpt_path": "ckpt_path",  # train: a checkpoint to start from; validate: the checkpoint to evaluate
    "dataset": None, "shuffle": None, "drop_remainder": None, "val_split": None, "train_split": None,
}
_MODES = {0: "graph", 1: "pynative", "0": "graph", "1": "pynative"}
_SCHEDULERS = {"cosine_decay": "cosine_annealing", "warmup_cosine_decay": "cosine_annealing",
               "step_decay": "step", "multi_step_decay": "multistep", "exponential_decay": "exponential",
               "constant": "constant"}
# MindCV values this zoo runs as they are; another value is reported as ignored
_SAME_AS_HERE = {"opt": ("momentum", "sgd"), "loss": ("ce", "CE"), "pretrained": (False,),
                 "dataset": ("imagenet",), "ema": (False,), "gradient_accumulation_steps": (1,)}


def read_mindcv_yaml(path: str, command: str = "") -> Dict[str, Any]:
    """The options a MindCV yaml at `path` sets, in this zoo's names; prints a `note:` naming what it ignored."""
    data = read_yaml(path)
    out: Dict[str, Any] = {}
    ignored = []
    for key, value in data.items():
        if key in _SAME_AS_HERE:
            if value not in _SAME_AS_HERE[key]:
                ignored.append(f"{key}={value!r}")
            continue
        target = MINDCV_KEYS.get(key, "ignored")
        if target == "ignored":
            ignored.append(str(key))
            continue
        if target is None or value is None:
            continue
        if target == "ckpt_path":
            if value:
                out["pretrained" if command == "train" else "checkpoint_path"] = value
            continue
        if target == "mode":
            value = _MODES.get(value, value)
        elif target == "lr_scheduler":
            value = _SCHEDULERS.get(str(value), value)
        elif target == "decay_bn_and_bias":
            value = not value  # MindCV's filter_bias_and_bn=True means: no decay on BN and biases
        elif target == "color_jitter" and isinstance(value, (list, tuple)) and value:
            value = value[0] if len(set(value[:3])) == 1 else value  # brightness=contrast=saturation only
        out[target] = value
    if ignored:
        print(f"note: MindCV config '{path}': {len(ignored)} key(s) with no equivalent here, ignored: "
              f"{', '.join(ignored)}", flush=True)
    return out
