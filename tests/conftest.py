"""Shared test set-up: repo root on sys.path, MindSpore on CPU in PyNative mode, small helpers."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


@pytest.fixture(scope="session", autouse=True)
def cpu_context():
    from common.compat import set_context

    set_context("pynative", "CPU")


def session_folder(tmp_path_factory):
    """The temporary folder of this test session that all pytest-xdist workers share: pytest-N of pytest-N/popen-gwK
    (xdist's documented way to share session data), pytest-N itself without xdist."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session", autouse=True)
def scan_cache_in_a_temporary_folder(tmp_path_factory):
    """Folder scans shared between processes (common.data.folder) go to a folder of this session, not to the
    user's ~/.cache; the commands the tests run inherit it."""
    from common.cpu_ops import switched

    with switched("ZOO_SCAN_CACHE", str(tmp_path_factory.mktemp("scan-cache"))):
        yield


@pytest.fixture(scope="session", autouse=True)
def compile_cache_of_the_session(tmp_path_factory):
    """Training graphs are kept in one folder of this test session (common.training.compile_cache), shared by the
    pytest workers: a run of a configuration an earlier test already compiled loads its graph (the resume tests
    check that such a run ends bit-identical to one that compiled)."""
    from common.cpu_ops import switched

    with switched("ZOO_COMPILE_CACHE", str(session_folder(tmp_path_factory) / "compile-cache")):
        yield


@pytest.fixture(autouse=True)
def cpu_operator_switches_on(monkeypatch):
    """Every test starts with the zoo's CPU-operator switches on (in-process and in the commands it runs), whatever
    the shell that started pytest holds: an expectation must not follow the environment. A test that needs one off
    sets it itself."""
    from common.cpu_ops import SWITCHES

    for switch in SWITCHES:
        monkeypatch.setenv(switch, "1")


def run_cli(args, timeout=600, env=None, cwd=ROOT):
    """Run a command-line entry point with the test's python; returns CompletedProcess (text)."""
    full_env = dict(os.environ, GLOG_v="3", PYTHONUNBUFFERED="1")
    full_env.update(env or {})
    return subprocess.run([sys.executable, *args], cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=timeout)


def step_config(**overrides):
    """A training config as train.py resolves it: every option's schema default, then `overrides` (for tests that
    build the step directly). Plain SGD at a constant LR in float32 unless overridden."""
    from easydict import EasyDict

    from common.config import SCHEMA

    cfg = {key: option.default for key, option in SCHEMA.items()}
    cfg.update(lr_scheduler="constant", epoch_size=1, amp_level="O0", loss_scale=1.0, loss_scale_type="fixed")
    cfg.update(overrides)
    return EasyDict(cfg)


def shared_run(tmp_path_factory, name, build):
    """The result of `build(folder)` (JSON data: paths, logs) for a run several tests only read, made once per test
    session even with pytest-xdist: the first worker that needs it builds it in `session_folder` under a file lock,
    the others wait and get the same folder and result. If the build fails, every test that needs it fails with
    that error. Tests copy what they change."""
    import fcntl
    import json
    import shutil

    base = session_folder(tmp_path_factory)
    folder, done, failed = base / f"shared-{name}", base / f"shared-{name}.json", base / f"shared-{name}.failed"
    with open(base / f"shared-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if failed.exists():
            pytest.fail(f"the shared run {name!r} failed in another test:\n{failed.read_text()}", pytrace=False)
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            try:
                result = build(folder)
            except BaseException as exc:
                failed.write_text(f"{type(exc).__name__}: {exc}"[-6000:])
                raise
            done.write_text(json.dumps(result))
        return json.loads(done.read_text())
