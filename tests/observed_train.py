"""resnext50_32x4d/train.py under observation, for tests/test_msrun.py: a launcher starts this file in train.py's place
(ZOO_ENTRY_PY) and it runs train.py unchanged, in this process, recording into $OBSERVE_DIR/rank<RANK_ID>.json:

- `read`: every image file this rank's training source handed to the pipeline;
- `wrote`: every file this rank created, replaced or appended to under --output_dir, from Python's audit events (open
  for writing, os.rename/os.replace: the zoo's atomic writes end in a rename, and the logs are opened for append).
  The launcher's scripts/msrun_worker.py, which runs this file, adds rank_<r>/exit_code after it.

Nothing of train.py is replaced: the source's reads are wrapped, and the audit hook only watches.
"""
import atexit
import json
import os
import runpy
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = os.path.join(ROOT, "resnext50_32x4d", "train.py")
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def _output_dir(argv) -> str:
    for index, arg in enumerate(argv[:-1]):
        if arg == "--output_dir":
            return os.path.abspath(argv[index + 1])
    raise SystemExit("observed_train.py needs --output_dir")


def run_train() -> None:
    sys.argv = [TRAIN, *sys.argv[1:]]
    sys.path[0] = os.path.dirname(TRAIN)  # as `python train.py` has it: train.py imports its folder's src/
    runpy.run_path(TRAIN, run_name="__main__")


def main() -> None:
    if os.environ.get("MS_ROLE", "MS_WORKER") != "MS_WORKER":
        run_train()  # msrun's scheduler runs the same command; it is no rank
        return
    record = {"read": [], "wrote": []}
    out_dir = _output_dir(sys.argv[1:]) + os.sep
    observe_dir = os.environ["OBSERVE_DIR"]
    rank = os.environ.get("RANK_ID", "0")

    def note_write(path) -> None:
        if isinstance(path, str) and os.path.abspath(path).startswith(out_dir):
            record["wrote"].append(os.path.relpath(path, out_dir))

    def audit(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = args
            writing = any(c in mode for c in "wax+") if isinstance(mode, str) else bool((flags or 0) & WRITE_FLAGS)
            if writing:
                note_write(path)
        elif event == "os.rename":
            note_write(args[1])

    sys.path.insert(0, ROOT)
    from common.data import folder

    read = folder.CheckedImageSource.__getitem__

    def reading(self, index):
        record["read"].append(self.samples[index][0])
        return read(self, index)

    folder.CheckedImageSource.__getitem__ = reading

    def dump() -> None:
        # written with the hook still installed, to a folder outside --output_dir
        with open(os.path.join(observe_dir, f"rank{rank}.json"), "w", encoding="utf-8") as fh:
            json.dump(record, fh)

    atexit.register(dump)
    sys.addaudithook(audit)
    run_train()


if __name__ == "__main__":
    main()
