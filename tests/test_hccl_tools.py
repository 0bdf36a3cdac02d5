"""scripts/hccl_tools.py: rank tables from hccn.conf files, merging servers, the launchers' --check plan."""
import json
import os
import subprocess
import sys

import pytest
from launcher_helpers import ROOT, write_table

TOOL = os.path.join(ROOT, "scripts", "hccl_tools.py")

HCCN_CONF = """# written by hccn_tool
address_0=192.1.27.6
netmask_0=255.255.255.0
address_1=192.2.27.6
netmask_1=255.255.255.0
address_2=192.3.27.6
address_3=192.4.27.6
address_4=192.1.27.7
address_5=192.2.27.7
address_6=192.3.27.7
address_7=192.4.27.7
"""


def run_tool(*args, cwd, env=None):
    full_env = {k: v for k, v in os.environ.items() if k not in ("RANK_SIZE", "SERVER_ID")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, TOOL, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          env=full_env, timeout=60)


def one_error_line(proc) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


@pytest.fixture
def hccn(tmp_path):
    path = tmp_path / "hccn.conf"
    path.write_text(HCCN_CONF)
    return path


def test_writes_the_reference_rank_table_for_8_devices(tmp_path, hccn):
    proc = run_tool("--device_num", "[0,8)", "--server_ip", "10.0.0.1", "--hccn_conf", hccn, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    path = tmp_path / "hccl_8p_01234567_10.0.0.1.json"  # the ModelZoo file name
    table = json.loads(path.read_text())
    assert table == {
        "version": "1.0", "server_count": "1", "status": "completed",
        "server_list": [{"server_id": "10.0.0.1", "host_nic_ip": "reserve", "device": [
            {"device_id": str(d), "device_ip": ip, "rank_id": str(d)} for d, ip in enumerate(
                ["192.1.27.6", "192.2.27.6", "192.3.27.6", "192.4.27.6",
                 "192.1.27.7", "192.2.27.7", "192.3.27.7", "192.4.27.7"])]}]}


def test_a_device_subset_is_ranked_from_zero(tmp_path, hccn):
    out = tmp_path / "t.json"
    proc = run_tool("--device_num", "[4,8)", "--server_ip", "10.0.0.1", "--hccn_conf", hccn, "--output", out,
                    cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    devices = json.loads(out.read_text())["server_list"][0]["device"]
    assert [(d["device_id"], d["rank_id"], d["device_ip"]) for d in devices] == [
        ("4", "0", "192.1.27.7"), ("5", "1", "192.2.27.7"), ("6", "2", "192.3.27.7"), ("7", "3", "192.4.27.7")]


@pytest.mark.parametrize("conf, expected", [
    ("address_0=192.1.27.6\naddress_1=192.2.27.6\n", "no device IP for device(s) 2, 3"),
    ("address_0=192.1.27.6\nthis line is broken\n", ":2: 'this line is broken' is not KEY=VALUE"),
    ("address_0=192.1.27.6\naddress_1=192.2.27.300\n", "address_1 '192.2.27.300' is not an IP address"),
    ("address_0=192.1.27.6\naddress_0=192.1.27.7\n", "address_0 is given twice"),
])
def test_missing_or_malformed_hccn_conf_is_one_clear_line(tmp_path, conf, expected):
    path = tmp_path / "hccn.conf"
    path.write_text(conf)
    out = tmp_path / "t.json"
    line = one_error_line(run_tool("--device_num", "[0,4)", "--server_ip", "10.0.0.1", "--hccn_conf", path,
                                   "--output", out, cwd=tmp_path))
    assert expected in line
    assert not out.exists()


def test_absent_hccn_conf_and_bad_ranges_are_refused(tmp_path, hccn):
    line = one_error_line(run_tool("--device_num", "[0,8)", "--server_ip", "10.0.0.1", "--hccn_conf",
                                   tmp_path / "absent.conf", cwd=tmp_path))
    assert "cannot read hccn.conf" in line and "--hccn_conf" in line
    for text, expected in (("[0,3)", "must hold 1, 2, 4 or 8"), ("[2,6)", "straddles devices 3 and 4"),
                           ("0-8", "half-open range"), ("[4,12)", "within [0,8)")):
        assert expected in one_error_line(run_tool("--device_num", text, "--server_ip", "10.0.0.1",
                                                   "--hccn_conf", hccn, cwd=tmp_path))
    assert "--server_ip 'server-a' is not an IP" in one_error_line(
        run_tool("--device_num", "[0,8)", "--server_ip", "server-a", "--hccn_conf", hccn, cwd=tmp_path))
    assert not list(tmp_path.glob("*.json"))


def test_merge_renumbers_ranks_server_by_server(tmp_path):
    first = write_table(tmp_path / "a.json", [("10.0.0.1", [(0, 1), (1, 0)])])
    second = write_table(tmp_path / "b.json", [("10.0.0.2", [(4, 0), (5, 1)])])
    out = tmp_path / "cluster.json"
    proc = run_tool("--merge", first, second, "--output", out, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    table = json.loads(out.read_text())
    assert table["server_count"] == "2"
    assert [(s["server_id"], [(d["device_id"], d["rank_id"]) for d in s["device"]]) for s in table["server_list"]] \
        == [("10.0.0.1", [("1", "0"), ("0", "1")]), ("10.0.0.2", [("4", "2"), ("5", "3")])]
    assert "appears in more than one table" in one_error_line(
        run_tool("--merge", first, first, "--output", out, cwd=tmp_path))


def test_check_prints_this_servers_plan_with_core_slices(tmp_path):
    table = write_table(tmp_path / "t.json", [("10.0.0.1", [(0, 0), (1, 1)]), ("10.0.0.2", [(2, 2), (3, 3)])])
    proc = run_tool("--check", table, "--host_ips", "172.17.0.5 10.0.0.2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "RANK_SIZE 4"
    assert [line.split()[1:3] for line in lines[1:]] == [["2", "2"], ["3", "3"]]
    assert "server_id" in one_error_line(run_tool("--check", table, "--server_id", "10.9.9.9", cwd=tmp_path))


def test_cpu_slices_are_equal_and_disjoint():
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    try:
        import hccl_tools
    finally:
        sys.path.pop(0)
    assert hccl_tools.cpu_slices(4, range(16)) == ["0-3", "4-7", "8-11", "12-15"]
    assert hccl_tools.cpu_slices(2, [0, 1, 2, 8, 9, 10]) == ["0-2", "8-10"]
    assert hccl_tools.cpu_slices(2, [0, 2, 4, 6, 7]) == ["0,2", "4,6"]
    assert hccl_tools.cpu_slices(4, [0, 1]) == ["", "", "", ""]
