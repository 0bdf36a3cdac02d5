"""The bad inputs of the reliability catalogue (tests/test_reliability.py), one row each.

A row names the bad input, builds it (`setup(world, tmp) -> command`) and lists the words the one `error:` line must
contain. `world` is the module's shared tiny data set and checkpoints (see `build_world`); `tmp` is the case's own
empty folder. A command is a list whose first item is a python script (run with the test's python) or a `.sh`
launcher (run with bash).
"""
from __future__ import annotations

import os
import pickle
import shutil
import zipfile
from dataclasses import dataclass
from typing import Callable, Dict, List, Tuple

import numpy as np

ARCH = "resnext50_32x4d"
TRAIN, EVAL, EXPORT, PREDICT = (f"{ARCH}/{name}.py" for name in ("train", "eval", "export", "predict"))
CONVERT = "scripts/convert_weights.py"
CLASSES = ("a", "b")
# Small enough that a case which wrongly got as far as training would still end (the test's timeout catches it).
TINY = ["--device_target", "CPU", "--num_classes", "2", "--image_size", "32", "--batch_size", "2", "--epoch_size",
        "1", "--warmup_epochs", "0"]


@dataclass(frozen=True)
class Case:
    id: str
    setup: Callable[[Dict[str, str], str], List[str]]
    words: Tuple[str, ...]


def write_images(root: str, classes=CLASSES, per_class: int = 3, seed: int = 0) -> None:
    """root/<class>/<i>.jpg, 32 px random JPEGs."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for name in classes:
        os.makedirs(os.path.join(root, name), exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(os.path.join(root, name, f"{i}.jpg"), quality=90)


def build_world(root: str) -> Dict[str, str]:
    """The files every case may read (and none may change): a train/val data set, a 2-class network checkpoint, a
    truncated copy of it, a text file named .ckpt, and a regular file to put 'folders' under."""
    from inference_helpers import make_checkpoint

    data = os.path.join(root, "data")
    write_images(os.path.join(data, "train"), per_class=4, seed=0)
    write_images(os.path.join(data, "val"), per_class=2, seed=1)
    ckpt = os.path.join(root, "net2.ckpt")
    make_checkpoint(ckpt, ARCH, len(CLASSES))
    truncated = os.path.join(root, "truncated.ckpt")
    with open(ckpt, "rb") as src, open(truncated, "wb") as dst:
        dst.write(src.read(os.path.getsize(ckpt) // 2))
    not_ckpt = os.path.join(root, "notes.ckpt")
    with open(not_ckpt, "w", encoding="utf-8") as fh:
        fh.write("these are my notes, not a checkpoint\n")
    blocker = os.path.join(root, "a_file")
    with open(blocker, "w", encoding="utf-8") as fh:
        fh.write("a regular file: nothing can be created under it, even by root\n")
    return dict(root=root, data=data, ckpt=ckpt, truncated=truncated, not_ckpt=not_ckpt, blocker=blocker)


def train(world, tmp, *extra, data=None) -> List[str]:
    return [TRAIN, "--data_dir", world["data"] if data is None else data, "--output_dir",
            os.path.join(tmp, "run"), *TINY, *extra]


def data_with(tmp: str, splits: Dict[str, Tuple[str, ...]]) -> str:
    """A data set under tmp with the given class folders per split."""
    root = os.path.join(tmp, "data")
    os.makedirs(root, exist_ok=True)
    for split, classes in splits.items():
        write_images(os.path.join(root, split), classes, per_class=2)
    return root


def write_text(tmp: str, name: str, text: str) -> str:
    path = os.path.join(tmp, name)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
    return path


def empty_class_folder(world, tmp):
    root = data_with(tmp, {"train": ("a",), "val": CLASSES})
    os.makedirs(os.path.join(root, "train", "b"))
    write_text(os.path.join(root, "train", "b"), "README.txt", "images go here")
    return train(world, tmp, data=root)


def run_eval_false(world, tmp):
    """No val/ split, so `--run_eval False` read as True would stop at the val check; read right, the run goes on
    to the next check, which the missing --resume file then fails."""
    root = data_with(tmp, {"train": CLASSES})
    return train(world, tmp, "--run_eval", "False", "--resume", os.path.join(tmp, "none.ckpt"), data=root)


def existing_run(world, tmp):
    out = os.path.join(tmp, "run")
    os.makedirs(out)
    shutil.copyfile(world["ckpt"], os.path.join(out, f"{ARCH}-1_2.ckpt"))
    return train(world, tmp)


def eval_cmd(world, tmp, ckpt_key="ckpt", *extra, script=EVAL):
    return [script, "--data_dir", world["data"], "--checkpoint_path", world[ckpt_key], "--device_target", "CPU",
            "--image_size", "32", "--batch_size", "2", "--output_dir", os.path.join(tmp, "out"), *extra]


def export_cmd(world, tmp, fmt="MINDIR", ckpt_key="ckpt", name=None):
    return [EXPORT, "--checkpoint_path", world[ckpt_key], "--file_format", fmt, "--file_name",
            name or os.path.join(tmp, "model"), "--device_target", "CPU", "--height", "32", "--width", "32"]


def malicious_pth(world, tmp):
    """A .pth whose pickle would run a shell command when unpickled by plain pickle/torch.load."""
    marker = os.path.join(tmp, "pwned")

    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    src = os.path.join(tmp, "evil.pth")
    with zipfile.ZipFile(src, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps(Evil(), protocol=2))
    return [CONVERT, "--arch", ARCH, "--src", src, "--out", os.path.join(tmp, "out.ckpt")]


def rank_table_launcher(world, tmp, table_text):
    table = write_text(tmp, "rank_table.json", table_text)
    return [f"{ARCH}/scripts/run_distribute_train.sh", table, world["data"]]


CASES: List[Case] = [
    # 1. the data set
    Case("data_dir_unset", lambda w, t: train(w, t, data=""), ("--data_dir is not set",)),
    Case("data_dir_missing", lambda w, t: train(w, t, data=os.path.join(t, "nope")), ("nope", "does not exist")),
    Case("data_dir_empty", lambda w, t: train(w, t, data=data_with(t, {})),
         ("has no class folders", "<class_name>")),
    Case("no_val_split_with_run_eval", lambda w, t: train(w, t, "--run_eval", "True",
                                                          data=data_with(t, {"train": CLASSES})),
         ("has train/ but no val/", "add val/")),
    Case("no_train_split", lambda w, t: train(w, t, data=data_with(t, {"val": CLASSES})),
         ("has val/ but no train/", "add train/")),
    Case("class_folder_without_images", empty_class_folder, ("class folder", "train/b", "holds no images")),
    # 3. classes
    Case("train_val_classes_differ", lambda w, t: train(w, t, data=data_with(t, {"train": CLASSES,
                                                                                 "val": ("a", "c")})),
         ("different class folders", "only in val: ['c']")),
    Case("num_classes_vs_data", lambda w, t: train(w, t, "--num_classes", "3"), ("2 class folders",
                                                                                  "--num_classes 2")),
    Case("num_classes_vs_checkpoint", lambda w, t: eval_cmd(w, t, "ckpt", "--num_classes", "5"),
         ("net2.ckpt", "num_classes")),
    # 4. checkpoints
    Case("eval_truncated_checkpoint", lambda w, t: eval_cmd(w, t, "truncated"), ("truncated.ckpt", "cannot be read")),
    Case("export_not_a_checkpoint", lambda w, t: export_cmd(w, t, ckpt_key="not_ckpt"),
         ("notes.ckpt", "cannot be read")),
    Case("checkpoint_of_another_arch", lambda w, t: eval_cmd(w, t, script="resnest50/eval.py"),
         ("net2.ckpt", "does not fit this network", "--arch")),
    Case("resume_missing", lambda w, t: train(w, t, "--resume", os.path.join(t, "none.ckpt")),
         ("--resume", "none.ckpt", "does not exist")),
    Case("resume_truncated", lambda w, t: train(w, t, "--resume", w["truncated"]),
         ("truncated.ckpt", "cannot be read")),
    Case("resume_from_weights_only", lambda w, t: train(w, t, "--resume", w["ckpt"]),
         ("no training state", "--pretrained")),
    Case("pretrained_not_a_checkpoint", lambda w, t: train(w, t, "--pretrained", w["not_ckpt"]),
         ("notes.ckpt", "cannot be read")),
    Case("convert_missing_source", lambda w, t: [CONVERT, "--arch", ARCH, "--src", os.path.join(t, "x.pth"), "--out",
                                                 os.path.join(t, "x.ckpt")], ("--src", "does not exist")),
    Case("convert_malicious_pickle", malicious_pth, ("evil.pth", "holds no state dict")),
    # 5. configuration
    Case("unknown_option", lambda w, t: train(w, t, "--learning_rate", "0.1"), ("unknown option 'learning_rate'",)),
    Case("wrong_type", lambda w, t: train(w, t, "--batch_size", "eight"), ("batch_size='eight'", "not a valid int")),
    Case("bad_boolean", lambda w, t: train(w, t, "--run_eval", "Flase"), ("run_eval='Flase'", "not a valid bool")),
    Case("negative_lr", lambda w, t: train(w, t, "--lr", "-0.1"), ("lr=-0.1", "out of range", "> 0")),
    Case("batch_size_zero", lambda w, t: train(w, t, "--batch_size", "0"), ("batch_size=0", "> 0")),
    # a warm-up longer than the run is shortened with a note, not refused (tests/test_lr_schedule.py)
    Case("ema_decay_not_below_one", lambda w, t: train(w, t, "--ema_decay", "1.5"),
         ("ema_decay=1.5", "out of range", "in [0, 1)")),
    Case("yaml_does_not_parse", lambda w, t: train(w, t, "--config_path", write_text(t, "bad.yaml", "lr: [0.1\n")),
         ("bad.yaml", "not valid yaml", "line")),
    Case("yaml_unknown_key", lambda w, t: train(w, t, "--config_path", write_text(t, "typo.yaml", "epochs: 3\n")),
         ("typo.yaml", "unknown option 'epochs'")),
    Case("yaml_wrong_type", lambda w, t: train(w, t, "--config_path", write_text(t, "t.yaml", "epoch_size: many\n")),
         ("t.yaml", "epoch_size='many'", "not a valid int")),
    Case("batch_larger_than_data", lambda w, t: train(w, t, "--batch_size", "64"),
         ("fewer than one global batch", "--batch_size")),
    # "--run_eval False" means False: read as True it would fail on the missing val/ split instead
    Case("run_eval_False_is_false", run_eval_false, ("--resume", "none.ckpt", "does not exist")),
    # 6. launchers (the rest in tests/test_launchers.py)
    Case("launcher_rank_table_not_json", lambda w, t: rank_table_launcher(w, t, '{"server_list": ['),
         ("rank_table.json",)),
    Case("launcher_relative_data_path", lambda w, t: [f"{ARCH}/scripts/run_standalone_train_cpu.sh", "data"],
         ("'data' is a relative path",)),
    # 7. export
    Case("air_off_ascend", lambda w, t: export_cmd(w, t, "AIR"), ("AIR needs Ascend", "MINDIR")),
    Case("unsupported_export_format", lambda w, t: export_cmd(w, t, "TFLITE"), ("'TFLITE' is not supported", "ONNX")),
    # 8. output folders
    Case("train_output_not_writable", lambda w, t: [*train(w, t)[:3], "--output_dir",
                                                    os.path.join(w["blocker"], "run"), *TINY],
         ("--output_dir", "not writable")),
    Case("train_output_holds_another_run", existing_run, ("already holds checkpoints", "--resume auto")),
    Case("eval_output_not_writable", lambda w, t: [*eval_cmd(w, t), "--output_dir", os.path.join(w["blocker"], "o")],
         ("a_file", "not writable")),
    Case("export_output_not_writable", lambda w, t: export_cmd(w, t, name=os.path.join(w["blocker"], "sub", "m")),
         ("a_file", "not writable")),
    Case("convert_output_folder_missing", lambda w, t: [CONVERT, "--arch", ARCH, "--src", w["ckpt"], "--out",
                                                        os.path.join(t, "no", "x.ckpt")], ("--out", "does not exist")),
    Case("predict_image_missing", lambda w, t: [PREDICT, "--checkpoint_path", w["ckpt"], "--image",
                                                os.path.join(t, "cat.jpg"), "--device_target", "CPU"],
         ("cat.jpg", "does not exist")),
]
