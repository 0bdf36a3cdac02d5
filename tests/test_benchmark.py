"""scripts/benchmark.py end to end at toy sizes: the documented JSON keys and a consistent ratio (no timing checks)."""
import json
import os
import sys

import pytest
from conftest import ROOT, run_cli
from launcher_helpers import free_port

SCRIPT = os.path.join(ROOT, "scripts", "benchmark.py")
TINY = ["--arch", "resnext50_32x4d", "--image_size", "32", "--batch_size", "2", "--steps", "2", "--warmup", "0",
        "--num_classes", "10", "--device_target", "CPU"]


def _run(tmp_path, *args):
    out = tmp_path / "bench.json"
    result = run_cli([SCRIPT, *TINY, "--json", str(out), *args], timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(out.read_text()), result.stdout


def test_train_compare_torch(tmp_path):
    # PyNative keeps the test fast (no graph compile); the timed step is still common.training.step.build_train_step.
    report, stdout = _run(tmp_path, "--mode", "train", "--compare", "torch", "--ms_mode", "pynative")
    assert report["mode"] == "train"
    for side in ("ours", "theirs"):
        assert report[side]["img_s"] > 0 and report[side]["ms_step"] > 0
        assert report[side]["img_s"] == pytest.approx(2000.0 / report[side]["ms_step"])
    assert report["ratio"] == pytest.approx(report["ours"]["img_s"] / report["theirs"]["img_s"])
    assert report["ours"]["peak_rss_mb"] > 0
    assert "ours/theirs img/s" in stdout
    # the model that ran, named and counted; the count is torchvision's own ResNeXt-50 with a 10-class head
    from torchvision.models import resnext50_32x4d

    assert report["theirs_model"]["name"] == ("torchvision.models.resnet.ResNet(Bottleneck, [3, 4, 6, 3], groups=32, "
                                              "width_per_group=4)")
    assert report["theirs_model"]["params"] == sum(p.numel() for p in resnext50_32x4d(num_classes=10).parameters())


def test_ab_times_ours_with_a_switch_off(tmp_path):
    report, stdout = _run(tmp_path, "--mode", "train", "--ab", "ZOO_FUSED_BN", "--ms_mode", "pynative")
    assert report["ab"] == "ZOO_FUSED_BN" and "theirs" not in report
    assert report["baseline"]["img_s"] > 0 and report["ours"]["img_s"] > 0
    assert report["ratio"] == pytest.approx(report["ours"]["img_s"] / report["baseline"]["img_s"])
    assert "ours/ZOO_FUSED_BN=0 img/s" in stdout
    # ResNeXt-50's train step: 16 grouped convs (oneDNN), 53 BNs (stem 1, 3 a block, 4 shortcuts), 1 momentum
    assert (report["ours"]["custom_cells"], report["baseline"]["custom_cells"]) == (16 + 53 + 1, 16 + 1)


# resnest50's train step, counted by hand: 16 split-attention convs with groups=2 (oneDNN); 71 BNs (deep stem 3, per
# block bn1, bn0, the attention BN and bn3, 4 shortcuts); 16 radix-2 split attentions; 1 momentum optimizer.
RESNEST_CELLS = {"ZOO_ONEDNN_CONV": 16, "ZOO_FUSED_BN": 71, "ZOO_FUSED_ATTENTION": 16, "ZOO_FUSED_MOMENTUM": 1}


def test_ab_baseline_is_built_with_each_switch_really_off():
    """The builder --ab uses for its baseline, switch by switch: exactly that family's cells are gone."""
    sys.path.insert(0, os.path.dirname(SCRIPT))
    import benchmark

    cfg = benchmark.load_bench_config(benchmark.parse_args([*TINY[:1], "resnest50", *TINY[2:], "--ms_mode",
                                                            "pynative"]))
    assert benchmark.ours_step(cfg, training=True).custom_cells == sum(RESNEST_CELLS.values())
    for switch, family in RESNEST_CELLS.items():
        baseline = benchmark.ours_step_with_switch_off(cfg, True, switch)
        assert baseline.custom_cells == sum(RESNEST_CELLS.values()) - family, switch
        assert os.environ[switch] == "1"  # restored for the ours side


def test_ab_switches_each_turn_their_family_off(monkeypatch):
    """Every switch --ab offers is one the CPU-operator decisions read, and turns its own family off, no other."""
    sys.path.insert(0, os.path.dirname(SCRIPT))
    import benchmark

    from common.cpu_ops import kernels_enabled, library_path

    assert library_path() is not None  # the suite's machine builds the operators
    assert len(benchmark.SWITCHES) == 4
    for switch in benchmark.SWITCHES:
        monkeypatch.setenv(switch, "0")
        assert [kernels_enabled(s) for s in benchmark.SWITCHES] == [s != switch for s in benchmark.SWITCHES]
        monkeypatch.setenv(switch, "1")


def test_eval_graph_without_compare(tmp_path):
    report, _ = _run(tmp_path, "--mode", "eval")
    assert report["mode"] == "eval" and report["ours"]["img_s"] > 0
    assert "theirs" not in report and "ratio" not in report


def test_pipeline_compare_torch(tmp_path):
    report, _ = _run(tmp_path, "--mode", "pipeline", "--compare", "torch", "--images", "4", "--num_workers", "2",
                     "--steps", "1", "--pass_images", "16")
    assert report["mode"] == "pipeline"
    keys = {"train_1worker", "train_2workers", "eval_1worker", "eval_2workers"}
    assert set(report["ratios"]) == keys
    for key in keys:
        ours, theirs = report["ours"][f"{key}_img_s"], report["theirs"][f"{key}_img_s"]
        assert report["ratios"][key] == pytest.approx(ours / theirs)
    assert report["ratio"] == report["ratios"]["train_1worker"]
    ours = report["ours"]
    assert ours["resnest_vs_plain_per_core"] == pytest.approx(ours["resnest_train_1core_img_s"]
                                                              / ours["train_1core_img_s"])
    assert ours["train_scaling_1core_to_2cores"] == pytest.approx(ours["train_2workers_img_s"]
                                                                  / ours["train_1core_img_s"])
    assert ours["reader_rows_s"] > 0 and ours["reader_floor_rows_s"] > 0 and ours["resnest_numpy_train_1core_img_s"] > 0
    assert ours["reader_cpp_rows_s"] > 0 and ours["reader_cpp_cpu_us_per_row"] > 0
    stages = [key[len("stage_cpu_ms_"):] for key in ours if key.startswith("stage_cpu_ms_")]
    assert stages == ["plain_+decode_crop_bilinear", "plain_+flip", "plain_+color_jitter", "plain_+normalize_chw",
                      "resnest_+decode_crop_bicubic", "resnest_+flip", "resnest_+rand_augment",
                      "resnest_+batch_map", "resnest_+batch_map_numpy"]


def test_on_cores_pins_threads_started_inside_and_gives_the_cores_back():
    import threading

    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    from benchmark_pipeline import on_cores

    allowed = os.sched_getaffinity(0)
    seen = []

    def record():
        seen.append(os.sched_getaffinity(0))
    with on_cores(1):
        thread = threading.Thread(target=record)
        thread.start()
        thread.join()
    assert len(seen[0]) == 1 and seen[0] <= allowed
    assert os.sched_getaffinity(0) == allowed


def test_train_under_msrun_reports_all_workers_images(tmp_path):
    """Two msrun workers: gradients all-reduced, rank 0 reports global img/s = workers * batch / step."""
    out = tmp_path / "bench.json"
    msrun = "import sys; from mindspore.parallel.cluster.run import main; sys.argv[0] = 'msrun'; main()"
    path = os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]  # msrun starts `python` from PATH
    result = run_cli(["-c", msrun, "--worker_num", "2", "--local_worker_num", "2", "--join", "True",
                      "--master_port", str(free_port()),
                      "--log_dir", str(tmp_path / "logs"), SCRIPT, *TINY, "--mode", "train", "--ms_mode", "pynative",
                      "--json", str(out)], env={"PATH": path})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["workers"] == 2
    assert report["ours"]["img_s"] == pytest.approx(2 * 2000.0 / report["ours"]["ms_step"])


@pytest.mark.parametrize("args,needle", [(["--batch_size", "0"], "--batch_size"),
                                         (["--mode", "compile", "--compare", "torch"], "compile"),
                                         (["--arch", "resnet9"], "unknown arch"),
                                         (["--ab", "ZOO_NOPE"], "--ab takes one of"),
                                         (["--ab", "ZOO_FUSED_BN", "--compare", "torch"], "without --compare"),
                                         # ResNeXt has no split attention: an A/B of nothing is refused
                                         ([*TINY, "--ab", "ZOO_FUSED_ATTENTION", "--ms_mode", "pynative"],
                                          "changes nothing")])
def test_user_errors_are_one_line(args, needle):
    assert_one_line_error(run_cli([SCRIPT, "--device_target", "CPU", *args], timeout=300), needle)


def test_compare_under_a_launcher_is_refused():
    result = run_cli([SCRIPT, "--device_target", "CPU", "--compare", "torch"], timeout=300, env={"MS_WORKER_NUM": "2"})
    assert_one_line_error(result, "msrun")


def assert_one_line_error(result, needle):
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0]
