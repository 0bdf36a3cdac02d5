"""Typed, documented configuration: schema defaults < model default_config.yaml < --config_path yaml < command line.

Every option is declared once in SCHEMA with its type and a one-line doc (pycls style); a model's default_config.yaml
only holds its recipe values. Unknown keys, in a yaml or on the command line, are errors, and so are values of the
wrong type or out of range. Booleans accept true/false/1/0/yes/no only, so "--run_eval False" means False.
Nothing here runs at import time: call `load_config`.
"""
from __future__ import annotations

import difflib
import json
import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import yaml
from easydict import EasyDict

from .errors import UserError


@dataclass(frozen=True)
class Option:
    default: Any
    type: str  # int, float, str, bool, int_list, float_list
    doc: str
    choices: Optional[Tuple[str, ...]] = None
    check: Optional[Callable[[Any], bool]] = None
    need: str = ""  # what `check` demands, for the error message


def _positive(v) -> bool:
    return v > 0


def _non_negative(v) -> bool:
    return v >= 0


def _fraction(v) -> bool:
    return 0.0 <= v <= 1.0


POS = dict(check=_positive, need="> 0")
NONNEG = dict(check=_non_negative, need=">= 0")
FRAC = dict(check=_fraction, need="in [0, 1]")

SCHEMA: Dict[str, Option] = {
    # --- run ---
    "arch": Option("resnext50_32x4d", "str", "network to build (common.list_models())"),
    "data_dir": Option("", "str", "ImageFolder root with train/ and val/ class folders, or one split folder"),
    "output_dir": Option("./outputs", "str", "run folder: checkpoints, logs, resolved config, metrics.jsonl"),
    "device_target": Option("Ascend", "str", "backend to run on", choices=("Ascend", "GPU", "CPU")),
    "device_id": Option(0, "int", "device index for single-device runs (DEVICE_ID env wins when set)", **NONNEG),
    "mode": Option("graph", "str", "MindSpore execution mode", choices=("graph", "pynative")),
    "jit_level": Option("", "str", "graph compile level O0/O1/O2 on MindSpore >= 2.3 ('' = backend default)",
                        choices=("", "O0", "O1", "O2")),
    "seed": Option(1, "int", "global random seed (weights init, data order, augmentation)", **NONNEG),
    "deterministic": Option(False, "bool", "force deterministic kernels where the backend offers them"),
    "enable_modelarts": Option(False, "bool", "ModelArts job: copy data_url in and output_dir out with moxing"),
    "data_url": Option("", "str", "ModelArts OBS data location (with enable_modelarts)"),
    "train_url": Option("", "str", "ModelArts OBS output location (with enable_modelarts)"),
    "checkpoint_url": Option("", "str", "ModelArts OBS checkpoint to fetch as pretrained/resume"),
    # --- model ---
    "num_classes": Option(1000, "int", "classifier outputs", **POS),
    "drop_rate": Option(0.0, "float", "dropout before the classifier", **FRAC),
    "zero_init_last": Option(False, "bool", "zero-init the last BN of each block (ResNeSt recipe, Goyal et al.)"),
    "pretrained": Option("", "str", "checkpoint to start from; a head of another class count is re-initialised"),
    "resume": Option("", "str", "checkpoint to resume exactly from, or 'auto' for the newest complete one in "
                                "output_dir"),
    # --- data ---
    "image_size": Option(224, "int", "train crop / eval crop side in pixels", **POS),
    "batch_size": Option(32, "int", "images per device per step", **POS),
    "eval_batch_size": Option(0, "int", "images per device per eval step (0 = batch_size)", **NONNEG),
    "num_parallel_workers": Option(0, "int", "dataset map workers per device (0 = the cores this rank may use: "
                                   "its CPU affinity, shared by the ranks of the host when not pinned)", **NONNEG),
    "crop_pct": Option(0.875, "float", "eval: resize shorter side to image_size / crop_pct, then centre crop",
                       check=lambda v: 0 < v <= 1, need="in (0, 1]"),
    "interpolation": Option("bilinear", "str", "resize interpolation", choices=("bilinear", "bicubic")),
    "scale_min": Option(0.08, "float", "RandomResizedCrop smallest area fraction", **FRAC),
    "hflip": Option(0.5, "float", "horizontal flip probability", **FRAC),
    "color_jitter": Option(0.4, "float", "brightness/contrast/saturation jitter strength (0 = off)", **NONNEG),
    "auto_augment": Option("", "str", "RandAugment policy like 'randaug-m9-mstd0.5' ('' = off)"),
    "re_prob": Option(0.0, "float", "random erasing probability", **FRAC),
    "mixup": Option(0.0, "float", "mixup alpha (0 = off)", **NONNEG),
    "cutmix": Option(0.0, "float", "cutmix alpha (0 = off)", **NONNEG),
    "mixup_prob": Option(1.0, "float", "probability of applying mixup/cutmix to a batch", **FRAC),
    "mixup_switch_prob": Option(0.5, "float", "probability of cutmix instead of mixup when both are on", **FRAC),
    "strict_data": Option(False, "bool", "stop on an unreadable image instead of skipping it with a warning"),
    # --- data pipeline at scale (issue 15) ---
    "reader_threads": Option(4, "int", "read-ahead threads per device (hide NFS latency; each costs GIL "
                                       "hand-offs from page cache; 0 or 1 = read in the pipeline's thread)",
                             **NONNEG),
    "python_multiprocessing": Option(False, "bool", "run the per-batch random erasing + mixup/cutmix map in "
                                                    "num_parallel_workers processes instead of one thread"),
    # --- optimisation ---
    "epoch_size": Option(150, "int", "training epochs", **POS),
    "lr": Option(0.1, "float", "peak learning rate (after lr_base_batch_size scaling)", **POS),
    "lr_base_batch_size": Option(0, "int", "if > 0, lr is scaled by global_batch / this (linear scaling rule)",
                                 **NONNEG),
    "lr_scheduler": Option("cosine_annealing", "str", "schedule after warm-up",
                           choices=("cosine_annealing", "step", "multistep", "exponential", "constant")),
    "lr_min": Option(0.0, "float", "final LR of cosine annealing", **NONNEG),
    "lr_epochs": Option([30, 60, 90], "int_list", "multistep milestones (epochs)"),
    "lr_step_size": Option(30, "int", "step schedule period (epochs)", **POS),
    "lr_gamma": Option(0.1, "float", "decay factor of step/multistep/exponential", **POS),
    "warmup_epochs": Option(0.0, "float", "linear warm-up epochs", **NONNEG),
    "warmup_init_lr": Option(0.0, "float", "LR at the start of warm-up", **NONNEG),
    "momentum": Option(0.9, "float", "SGD momentum", **FRAC),
    "nesterov": Option(False, "bool", "Nesterov momentum"),
    "weight_decay": Option(1e-4, "float", "L2 weight decay on conv/dense weights", **NONNEG),
    "decay_bn_and_bias": Option(False, "bool", "also decay BN gamma/beta and biases (off in every recipe here)"),
    "label_smooth_factor": Option(0.1, "float", "label smoothing of the cross entropy", **FRAC),
    "amp_level": Option("O0", "str", "mixed precision level", choices=("O0", "O1", "O2", "O3")),
    "loss_scale": Option(1024.0, "float", "loss scale (initial value when dynamic)", **POS),
    "loss_scale_type": Option("fixed", "str", "fixed or dynamic loss scaling", choices=("fixed", "dynamic")),
    "nonfinite_patience": Option(20, "int", "consecutive non-finite (skipped) steps tolerated before the run "
                                            "stops, fixed or dynamic loss scale", **POS),
    # --- checkpoints, eval, logs ---
    "save_checkpoint_epochs": Option(1, "int", "save a checkpoint every N epochs", **POS),
    "keep_checkpoint_max": Option(10, "int", "newest checkpoints kept (best.ckpt is kept apart)", **POS),
    "run_eval": Option(False, "bool", "evaluate on the val split during training and keep best.ckpt"),
    "eval_interval": Option(1, "int", "evaluate every N epochs", **POS),
    "eval_start_epoch": Option(1, "int", "first epoch to evaluate", **POS),
    "log_interval": Option(100, "int", "steps between per-step log lines", **POS),
    "dataset_sink_mode": Option(False, "bool", "sink the data pipeline into the device graph (Ascend/GPU)"),
    "checkpoint_path": Option("", "str", "eval/export/predict: checkpoint to load"),
    # --- accelerator path (issue 14) ---
    "amp_on_cpu": Option(False, "bool", "apply amp_level on CPU too (default: CPU trains float32, its float16 "
                                        "kernels are slower and overflowed at step 1)"),
    # --- fine-tuning, EMA, gradient accumulation, SyncBN (issue 18) ---
    "freeze_layers": Option(-1, "int", "freeze stem + first N stages, BN statistics included (-1 none, 0 stem, "
                                       "4 = linear probe)", check=lambda v: -1 <= v <= 4, need="in -1..4"),
    "head_lr_mult": Option(1.0, "float", "LR multiplier of the classifier (fc) against the backbone", **POS),
    "ema_decay": Option(0.0, "float", "keep an EMA of the weights with this decay per optimizer step (0 = off)",
                        check=lambda v: 0.0 <= v < 1.0, need="in [0, 1)"),
    "use_ema": Option(False, "bool", "eval/export/predict: use the EMA weights stored in a train.py checkpoint"),
    "grad_accum_steps": Option(1, "int", "micro-batches of batch_size per optimizer step (global batch x K)", **POS),
    "sync_bn": Option(False, "bool", "data-parallel runs on Ascend/GPU: BatchNorm statistics over all devices"),
    # --- eval preprocessing presets (common.data.presets) ---
    "eval_preset": Option("", "str", "eval/predict/export preprocessing as the weights' authors evaluated them "
                                     "('' = the one recorded beside the checkpoint, else zoo)",
                          choices=("", "zoo", "torchvision_v1", "torchvision_v2", "timm")),
    "eval_backend": Option("", "str", "eval decode+resize: pil (antialiased, as torchvision/timm) or mindspore "
                                      "('' = the preset's: mindspore for zoo, pil for the others)",
                           choices=("", "pil", "mindspore")),
    # --- ModelZoo / MindCV drop-in (README "Coming from ModelZoo / MindCV") ---
    "distribute": Option("auto", "str", "data parallel: auto = when a launcher (msrun, mpirun, rank table) started "
                                        "several ranks; true/false (ModelZoo --is_distributed, MindCV --distribute) "
                                        "must agree with how the run was launched",
                         check=lambda v: v.lower() in _TRISTATE, need="auto, true or false"),
    "pool_padding": Option("", "str", "padding of the stem max pool and ResNeSt's avd pool: symmetric (torchvision/"
                                      "timm) or same (MindCV/ModelZoo, bottom/right at even sizes); '' = the "
                                      "checkpoint's own (symmetric for a new network)",
                           choices=("", "symmetric", "same")),
}

ALIASES = {"per_batch_size": "batch_size", "max_epoch": "epoch_size", "checkpoint_file_path": "checkpoint_path",
           "label_smooth": "label_smooth_factor", "lr_schedule": "lr_scheduler", "platform": "device_target"}

# The ModelZoo's and MindCV's option names, per command, with the meaning each has in its own project. The one clash:
# ModelZoo train.py's --ckpt_path is the folder checkpoints are written to, MindCV validate.py's is the checkpoint
# to evaluate (MindCV train.py's yaml ckpt_path is a checkpoint to start from: common/mindcv_config.py).
_INFERENCE_ALIASES = {"ckpt_file": "checkpoint_path", "ckpt_path": "checkpoint_path", "pretrained": "checkpoint_path"}
COMMAND_ALIASES: Dict[str, Dict[str, str]] = {
    "train": {"ckpt_path": "output_dir", "is_distributed": "distribute"},
    "eval": _INFERENCE_ALIASES, "export": _INFERENCE_ALIASES, "predict": _INFERENCE_ALIASES,
}

_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}
_TRISTATE = _TRUE | _FALSE | {"auto"}


def parse_value(key: str, raw: Any, where: str, opt: Optional[Option] = None) -> Any:
    """Convert `raw` (str from the command line, or a yaml value) to the option's type, then check it."""
    opt = opt or SCHEMA[key]
    try:
        value = _convert(opt.type, raw)
    except (TypeError, ValueError):
        raise UserError(f"{where}: {key}={raw!r} is not a valid {opt.type.replace('_', ' ')} ({opt.doc})") from None
    if opt.choices is not None and value not in opt.choices:
        raise UserError(f"{where}: {key}={value!r} is not one of {', '.join(repr(c) for c in opt.choices)}")
    if opt.check is not None and not opt.check(value):
        raise UserError(f"{where}: {key}={value!r} is out of range; it must be {opt.need} ({opt.doc})")
    return value


def _convert(kind: str, raw: Any) -> Any:
    if kind == "bool":
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError(raw)
    if kind in ("int_list", "float_list"):
        item = int if kind == "int_list" else float
        if isinstance(raw, str):
            raw = [p for p in raw.replace("[", "").replace("]", "").replace(",", " ").split() if p]
        if not isinstance(raw, (list, tuple)):
            raise ValueError(raw)
        return [_convert(item.__name__, r) for r in raw]
    if kind == "int":
        if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
            raise ValueError(raw)
        return int(raw)
    if kind == "float":
        if isinstance(raw, bool):
            raise ValueError(raw)
        return float(raw)
    if raw is None:
        return ""
    if not isinstance(raw, (str, int, float)):
        raise ValueError(raw)
    return str(raw)


def aliases_of(command: str = "") -> Dict[str, str]:
    """Alias -> option of one command (train/eval/export/predict), or of all commands with '' (first meaning wins)."""
    if command:
        return {**ALIASES, **COMMAND_ALIASES.get(command, {})}
    merged = dict(ALIASES)
    for table in COMMAND_ALIASES.values():
        merged.update({k: v for k, v in table.items() if k not in merged})
    return merged


def canonical_key(key: str, where: str, extra: Sequence[str] = (), aliases: Optional[Dict[str, str]] = None) -> str:
    aliases = ALIASES if aliases is None else aliases
    key = aliases.get(key, key)
    if key not in SCHEMA and key not in extra:
        close = difflib.get_close_matches(key, list(SCHEMA) + list(aliases) + list(extra), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else "; run with --help to list the options"
        raise UserError(f"{where}: unknown option '{key}'{hint}")
    return key


def read_yaml(path: str) -> Dict[str, Any]:
    """Read a flat yaml mapping; a parse error or a non-mapping is a UserError naming the file."""
    if not os.path.isfile(path):
        raise UserError(f"config file '{path}' does not exist")
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise UserError(f"config file '{path}' is not valid yaml{at}; fix its syntax") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config file '{path}' must be a mapping of option: value")
    return data


def split_cli(argv: Sequence[str], where: str = "command line") -> List[Tuple[str, str]]:
    """['--a', '1', '--b=2'] -> [('a', '1'), ('b', '2')]; a flag with no value is an error."""
    pairs, i = [], 0
    argv = ["--config" if a == "-c" else a for a in argv]  # MindCV's short form of --config
    while i < len(argv):
        token = argv[i]
        if not token.startswith("--") or token == "--":
            raise UserError(f"{where}: unexpected argument '{token}'; options look like --key value")
        if "=" in token:
            key, value = token[2:].split("=", 1)
            i += 1
        else:
            if i + 1 >= len(argv) or (argv[i + 1].startswith("--") and len(argv[i + 1]) > 2):
                raise UserError(f"{where}: option '{token}' needs a value")
            key, value = token[2:], argv[i + 1]
            i += 2
        pairs.append((key, value))
    return pairs


def load_config(default_yaml: Optional[str], argv: Sequence[str] = (), extra: Optional[Dict[str, Option]] = None,
                command: str = "") -> EasyDict:
    """Resolve the configuration of one run.

    `extra` declares options of one entry point only (export's file_format, say) with the same typing rules.
    `--config_path FILE` on the command line swaps in another yaml on top of the model's defaults; `--config`/`-c
    FILE` reads a MindCV yaml (common.mindcv_config). `command` (train/eval/export/predict) selects the ModelZoo and
    MindCV names of COMMAND_ALIASES; the model's own default yaml uses the zoo's names only.
    """
    from .mindcv_config import read_mindcv_yaml

    extra = extra or {}
    schema = {**SCHEMA, **extra}
    cfg: Dict[str, Any] = {k: (list(o.default) if isinstance(o.default, list) else o.default)
                           for k, o in schema.items()}
    pairs = split_cli(argv)
    layers: List[Tuple[str, Dict[str, Any]]] = []
    if default_yaml:
        layers.append((default_yaml, read_yaml(default_yaml)))
    for key, value in pairs:
        if key == "config_path":
            layers.append((value, read_yaml(value)))
        elif key == "config":
            layers.append((value, read_mindcv_yaml(value, command)))
    layers.append(("command line", {k: v for k, v in pairs if k not in ("config_path", "config")}))
    for where, data in layers:
        aliases = ALIASES if where == default_yaml else aliases_of(command)
        for key, raw in data.items():
            name = canonical_key(str(key), where, extra, aliases)
            cfg[name] = parse_value(name, raw, where, schema[name])
    _check_relations(cfg)
    return EasyDict(cfg)


def _check_relations(cfg: Dict[str, Any]) -> None:
    if cfg["lr_scheduler"] == "multistep" and sorted(cfg["lr_epochs"]) != cfg["lr_epochs"]:
        raise UserError(f"lr_epochs={cfg['lr_epochs']} must be increasing")


def help_text(extra: Optional[Dict[str, Option]] = None, defaults: Optional[Dict[str, Any]] = None,
              command: str = "") -> str:
    """One line per option: name, type, default (the model's recipe value when `defaults` is given), doc."""
    rows = []
    for key, opt in {**SCHEMA, **(extra or {})}.items():
        choices = f" {{{','.join(c or repr(c) for c in opt.choices)}}}" if opt.choices else ""
        default = defaults[key] if defaults and key in defaults else opt.default
        rows.append(f"  --{key} ({opt.type}{choices}, default {default!r}): {opt.doc}")
    aliases = ", ".join(f"--{a} = --{k}" for a, k in aliases_of(command).items())
    return ("options:\n" + "\n".join(rows) + f"\naliases: {aliases}\n  --config_path FILE: yaml on top of the defaults"
            "\n  --config / -c FILE: a MindCV yaml; its keys that map are read, the others listed as ignored")


def dump_config(cfg: Dict[str, Any], folder: str, name: str = "config.yaml") -> str:
    """Write the resolved config beside the run (yaml, key order as in SCHEMA); returns the path."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, name)
    with open(path, "w", encoding="utf-8") as fh:
        yaml.safe_dump(json.loads(json.dumps(dict(cfg))), fh, sort_keys=False)
    return path


def model_config_loader(src_file: str) -> Callable[..., Tuple[List[str], Optional[EasyDict]]]:
    """get_config(argv, usage, extra) -> (argv, config) for the model folder holding `src_file` (its src/config.py):
    that folder's default_config.yaml, then the command line (see `entry_config`). `.model_dir` names the folder."""
    model_dir = os.path.dirname(os.path.dirname(os.path.abspath(src_file)))

    def get_config(argv: Optional[Sequence[str]] = None, usage: str = "", extra: Optional[Dict[str, Option]] = None,
                   command: str = "") -> Tuple[List[str], Optional[EasyDict]]:
        return entry_config(model_dir, argv, usage, extra, command)

    get_config.model_dir = model_dir  # type: ignore[attr-defined]
    return get_config


def entry_config(model_dir: str, argv: Optional[Sequence[str]], usage: str,
                 extra: Optional[Dict[str, Option]] = None, command: str = "") -> Tuple[List[str], Optional[EasyDict]]:
    """(argv, resolved config) of an entry point of `model_dir`; the config is None when -h/--help printed help.

    Help lists each option with the value this model's default_config.yaml gives it.
    """
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    yaml_path = os.path.join(model_dir, "default_config.yaml")
    if "-h" in argv or "--help" in argv:
        print(usage + "\n" + help_text(extra, load_config(yaml_path, (), extra=extra), command))
        return argv, None
    return argv, load_config(yaml_path, argv, extra=extra, command=command)
