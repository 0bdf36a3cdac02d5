"""The reliability catalogue (issue 7): every bad input of tests/reliability_cases.py, run through the real entry
point as a subprocess, must give

1. exit code 2, the code of every user mistake (common/errors.py),
2. exactly one `error:` line on stderr that names the problem (the case's words),
3. no Python traceback,
4. nothing already on disk changed: the shared data set and checkpoints and every file the case set up keep their
   contents, and no file appears (no half-written checkpoint, export or result).

Most cases fail in argument and data checks before a network is built, so each costs about one interpreter start.

Failures covered by slower tests elsewhere, not repeated here:
- corrupt/truncated JPEG and non-image files in the data set (skipped with a warning and an epoch count, or an
  error with --strict_data):
  tests/test_train_e2e.py::test_bad_images_are_skipped_with_a_warning_or_refused_with_strict_data,
  tests/test_train_units.py::test_image_checks_name_truncated_and_non_image_files; an undecodable image in eval:
  tests/test_eval.py::test_eval_names_an_undecodable_image; in predict:
  tests/test_predict.py::test_non_image_and_wrong_labels_are_one_line_errors.
- disk full while writing a checkpoint (previous checkpoint intact), auto resume past a truncated newest checkpoint:
  tests/test_train_units.py::test_checkpoints_keep_max_auto_resume_and_disk_full.
- NaN/inf loss: skipped steps counted with a dynamic scale (tests/test_train_units.py::
  test_overflow_skips_the_update_and_dynamic_scale_halves), a stop that keeps the last good checkpoint with a fixed
  scale (tests/test_train_e2e.py::test_fixed_loss_scale_overflow_stops_and_keeps_the_checkpoint).
- SIGTERM and SIGINT (checkpoint, exit 128 + signal) and SIGKILL mid-epoch, then --resume PATH / auto ending
  bit-identical to an uninterrupted run (every checkpoint entry, loss scale and step counter included), and memory
  flat over its epochs: tests/test_train_e2e.py::
  test_interrupted_and_resumed_run_ends_bit_identical_to_an_uninterrupted_one; memory flat over rebuilt pipelines:
  tests/test_train_units.py::test_rebuilding_the_train_pipeline_every_epoch_does_not_grow_memory.
- the other bad rank tables and launcher arguments, and a rank that dies: tests/test_launchers.py,
  tests/test_hccl_tools.py.
- malicious pickles read in-process: tests/test_convert.py::test_malicious_pickle_runs_nothing.
"""
import hashlib
import os
import subprocess
import sys

import pytest
from conftest import ROOT
from launcher_helpers import BASH, launcher_env
from reliability_cases import CASES, build_world

CASE_TIMEOUT = 120  # seconds; a case that reaches training is a bug, and this stops it


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_world(str(tmp_path_factory.mktemp("reliability_world")))


def fingerprint(path: str) -> tuple:
    """Size and content hash of a file (large files: mtime plus the first and last MiB, to keep hashing cheap)."""
    size = os.path.getsize(path)
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        if size <= 4 << 20:
            digest.update(fh.read())
            return size, digest.hexdigest()
        digest.update(fh.read(1 << 20))
        fh.seek(-(1 << 20), os.SEEK_END)
        digest.update(fh.read())
    return size, os.stat(path).st_mtime_ns, digest.hexdigest()


def snapshot(*roots: str) -> dict:
    """path -> fingerprint of every file under `roots`."""
    return {os.path.join(folder, name): fingerprint(os.path.join(folder, name))
            for root in roots for folder, _, names in os.walk(root) for name in names}


def run_command(command, records: str) -> subprocess.CompletedProcess:
    if command[0].endswith(".sh"):
        # the launchers' test environment: a job that wrongly starts runs the stand-in, not training
        argv, env = [BASH, os.path.join(ROOT, command[0]), *command[1:]], launcher_env(records)
    else:
        argv, env = [sys.executable, *command], dict(os.environ, GLOG_v="3", PYTHONUNBUFFERED="1")
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=CASE_TIMEOUT)


# Written out, not counted from CASES: a row deleted or lost in a merge turns this red.
CATALOGUE_SIZE = 39


def test_catalogue_has_its_exact_count_of_distinct_bad_inputs():
    assert len({case.id for case in CASES}) == len(CASES) == CATALOGUE_SIZE


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_gives_one_clear_error_and_damages_nothing(case, world, tmp_path):
    work = tmp_path / "case"
    work.mkdir()
    command = case.setup(world, str(work))
    before = snapshot(world["root"], str(work))
    result = run_command(command, str(tmp_path / "records"))
    after = snapshot(world["root"], str(work))
    shown = f"exit {result.returncode}\nstdout:\n{result.stdout[-2000:]}\nstderr:\n{result.stderr[-3000:]}"

    assert result.returncode == 2, shown
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, shown
    for word in case.words:
        assert word in errors[0], f"{word!r} not in: {errors[0]}"
    assert "Traceback" not in result.stderr, shown
    changed = sorted(path for path in before if after.get(path) != before[path])
    created = sorted(set(after) - set(before))
    assert not changed and not created, (changed, created)
    assert not os.path.exists(tmp_path / "records"), "a launcher started a job"
