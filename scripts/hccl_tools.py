"""Ascend rank tables (RANK_TABLE_FILE): write one for this server, merge several servers', check one for a launcher.

    python scripts/hccl_tools.py --device_num "[0,8)" [--server_ip IP] [--hccn_conf /etc/hccn.conf] [--output F]
    python scripts/hccl_tools.py --merge server1.json server2.json [...] --output cluster.json
    python scripts/hccl_tools.py --check TABLE [--server_id ID] [--host_ips "IP ..."]

The format is the ModelZoo one (every value a string, docs/DESIGN.md §4). Device IPs come from hccn.conf lines
`address_N=IP` (what `hccn_tool -i N -ip -g` reports). `--check` is what the launchers call before starting anything:
it validates the table and prints `RANK_SIZE n` then one `RANK device_id rank_id cpu_list` line per device of this
server (cpu_list: this rank's equal slice of the cores the launcher may use, empty when there are too few).
Only the standard library is used, so the tool runs on a bare server. Mistakes are one `error: ...` line, exit 2.
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import os
import re
import socket
import sys
from typing import Dict, List, Optional, Sequence, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository root: common/

DEVICE_GROUPS = (1, 2, 4, 8)  # Ascend devices usable together on one server
EXIT_USER_ERROR = 2


class TableError(Exception):
    """A mistake in the arguments, hccn.conf or a rank table: one line for the user."""


def parse_device_range(text: str) -> List[int]:
    """'[0,8)' -> [0..7]; the count must be 1, 2, 4 or 8 and 2/4 devices must not straddle devices 3 and 4."""
    match = re.fullmatch(r"\s*\[\s*(\d+)\s*,\s*(\d+)\s*\)\s*", text)
    if not match:
        raise TableError(f"--device_num '{text}' is not a half-open range like \"[0,8)\" or \"[4,8)\"")
    first, last = int(match.group(1)), int(match.group(2))
    if not 0 <= first < last <= 8 or (last - first) not in DEVICE_GROUPS:
        raise TableError(f"--device_num '{text}' must hold 1, 2, 4 or 8 devices within [0,8)")
    if (last - first) in (2, 4) and first < 4 < last:
        raise TableError(f"--device_num '{text}' straddles devices 3 and 4; 2 or 4 devices must lie within "
                         "[0,4) or [4,8)")
    return list(range(first, last))


def read_hccn_conf(path: str) -> Dict[int, str]:
    """Device id -> device IP from `address_N=IP` lines; other KEY=VALUE lines (netmask_N, ...) are ignored."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError as exc:
        raise TableError(f"cannot read hccn.conf '{path}' ({exc.strerror}); pass --hccn_conf PATH") from None
    addresses: Dict[int, str] = {}
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise TableError(f"{path}:{number}: '{line}' is not KEY=VALUE (expected lines like address_0=192.1.27.6)")
        key, value = key.strip(), value.strip()
        match = re.fullmatch(r"address_(\d+)", key)
        if not match:
            continue
        device = int(match.group(1))
        if device in addresses:
            raise TableError(f"{path}:{number}: address_{device} is given twice")
        addresses[device] = check_ip(value, f"{path}:{number}: address_{device}")
    return addresses


def check_ip(value: str, what: str) -> str:
    """`value` when it is an IPv4/IPv6 address, else a TableError naming `what`."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise TableError(f"{what} '{value}' is not an IP address") from None
    return value


def default_server_ip() -> str:
    """This host's address as the hostname resolves it (the ModelZoo default)."""
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        raise TableError("cannot resolve this host's IP address; pass --server_ip IP") from None


def build_table(devices: Sequence[int], addresses: Dict[int, str], server_ip: str, hccn_path: str) -> dict:
    """One-server rank table over `devices`, rank ids in device order."""
    missing = [d for d in devices if d not in addresses]
    if missing:
        raise TableError(f"{hccn_path} has no device IP for device(s) {', '.join(map(str, missing))} "
                         f"(need address_{missing[0]}=IP lines; `hccn_tool -i {missing[0]} -ip -g` shows it)")
    device_list = [{"device_id": str(d), "device_ip": addresses[d], "rank_id": str(rank)}
                   for rank, d in enumerate(devices)]
    return {"version": "1.0", "server_count": "1",
            "server_list": [{"server_id": server_ip, "device": device_list, "host_nic_ip": "reserve"}],
            "status": "completed"}


def _int_field(entry: dict, key: str, where: str) -> int:
    value = entry.get(key)
    if value is None:
        raise TableError(f"{where} has no \"{key}\"")
    try:
        return int(str(value))
    except ValueError:
        raise TableError(f"{where} \"{key}\" is '{value}', not a number") from None


def load_table(path: str) -> dict:
    """Read and validate a rank table; every problem is one TableError line naming the file."""
    try:
        with open(path, encoding="utf-8") as handle:
            table = json.load(handle)
    except OSError as exc:
        raise TableError(f"cannot read rank table '{path}' ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise TableError(f"rank table '{path}' is not valid JSON (line {exc.lineno}: {exc.msg}); "
                         "regenerate it with scripts/hccl_tools.py") from None
    validate_table(table, path)
    return table


def validate_table(table: object, path: str) -> None:
    """Structure, per-server device counts (1/2/4/8), unique device ids per server, rank ids exactly 0..n-1."""
    servers = table.get("server_list") if isinstance(table, dict) else None
    if not isinstance(servers, list) or not servers:
        raise TableError(f"rank table '{path}' has no \"server_list\"; regenerate it with scripts/hccl_tools.py")
    if "server_count" in table and str(table["server_count"]) != str(len(servers)):
        raise TableError(f"rank table '{path}' says server_count {table['server_count']} but lists "
                         f"{len(servers)} server(s)")
    ranks: List[int] = []
    server_ids = set()
    for index, server in enumerate(servers):
        where = f"rank table '{path}' server {index}"
        devices = server.get("device") if isinstance(server, dict) else None
        if not isinstance(devices, list) or not devices or not all(isinstance(d, dict) for d in devices):
            raise TableError(f"{where} has no \"device\" list")
        server_id = str(server.get("server_id", ""))
        if not server_id or server_id in server_ids:
            raise TableError(f"{where} has a missing or repeated \"server_id\" '{server_id}'")
        server_ids.add(server_id)
        if len(devices) not in DEVICE_GROUPS:
            raise TableError(f"{where} ({server_id}) lists {len(devices)} devices; Ascend servers take 1, 2, 4 or 8")
        device_ids = [_int_field(d, "device_id", where) for d in devices]
        if len(set(device_ids)) != len(device_ids):
            dup = sorted({d for d in device_ids if device_ids.count(d) > 1})
            raise TableError(f"{where} ({server_id}) repeats device_id {', '.join(map(str, dup))}")
        if any(not 0 <= d < 8 for d in device_ids):
            raise TableError(f"{where} ({server_id}) has a device_id outside 0..7: {device_ids}")
        for device in devices:
            check_ip(str(device.get("device_ip", "")), f"{where} device {device.get('device_id')} device_ip")
        ranks += [_int_field(d, "rank_id", where) for d in devices]
    if sorted(ranks) != list(range(len(ranks))):
        raise TableError(f"rank table '{path}' rank_ids {sorted(ranks)} are not exactly 0..{len(ranks) - 1}")


def merge_tables(paths: Sequence[str]) -> dict:
    """Servers of all tables in the given order, rank ids renumbered 0..n-1 server by server."""
    servers: List[dict] = []
    for path in paths:
        servers += load_table(path)["server_list"]
    seen: Dict[str, int] = {}
    rank = 0
    merged = []
    for server in servers:
        server_id = str(server["server_id"])
        if server_id in seen:
            raise TableError(f"server '{server_id}' appears in more than one table; merge each server once")
        seen[server_id] = 1
        devices = sorted(server["device"], key=lambda d: int(str(d["rank_id"])))
        renumbered = []
        for device in devices:
            renumbered.append({"device_id": str(device["device_id"]), "device_ip": str(device["device_ip"]),
                               "rank_id": str(rank)})
            rank += 1
        merged.append({"server_id": server_id, "device": renumbered,
                       "host_nic_ip": str(server.get("host_nic_ip", "reserve"))})
    return {"version": "1.0", "server_count": str(len(merged)), "server_list": merged, "status": "completed"}


def pick_server(table: dict, server_id: str, host_ips: Sequence[str], path: str) -> dict:
    """This server's entry: the only one, the one named by server_id, or the one whose id is a local IP."""
    servers = table["server_list"]
    if server_id:
        for server in servers:
            if str(server["server_id"]) == server_id:
                return server
        raise TableError(f"SERVER_ID '{server_id}' is not a server_id of rank table '{path}'")
    if len(servers) == 1:
        return servers[0]
    local = [s for s in servers if str(s["server_id"]) in set(host_ips)]
    if len(local) != 1:
        raise TableError(f"rank table '{path}' spans {len(servers)} servers and none is recognisably this one; "
                         "export SERVER_ID=<this server's server_id>")
    return local[0]


def cpu_slices(count: int, cpus: Optional[Sequence[int]] = None) -> List[str]:
    """`count` equal, disjoint slices of the usable cores as taskset lists ('0-3'); '' each when too few cores."""
    cpus = sorted(os.sched_getaffinity(0) if cpus is None else cpus)
    per = len(cpus) // max(1, count)
    if per == 0:
        return [""] * count
    slices = []
    for index in range(count):
        part = cpus[index * per:(index + 1) * per]
        runs: List[Tuple[int, int]] = []
        for cpu in part:
            if runs and cpu == runs[-1][1] + 1:
                runs[-1] = (runs[-1][0], cpu)
            else:
                runs.append((cpu, cpu))
        slices.append(",".join(f"{a}-{b}" if a != b else str(a) for a, b in runs))
    return slices


def check_lines(path: str, server_id: str, host_ips: Sequence[str], env_rank_size: str) -> List[str]:
    """Launcher plan for this server: `RANK_SIZE n`, then `RANK device_id rank_id cpu_list` per local device."""
    if not os.path.isabs(path):
        raise TableError(f"RANK_TABLE_FILE '{path}' is a relative path; pass an absolute one such as "
                         f"{os.path.abspath(path)}")
    table = load_table(path)
    rank_size = sum(len(s["device"]) for s in table["server_list"])
    if env_rank_size and env_rank_size != str(rank_size):
        raise TableError(f"RANK_SIZE={env_rank_size} is set but rank table '{path}' holds {rank_size} ranks; "
                         "unset RANK_SIZE or fix the table")
    server = pick_server(table, server_id, host_ips, path)
    devices = sorted(server["device"], key=lambda d: int(str(d["rank_id"])))
    lines = [f"RANK_SIZE {rank_size}"]
    for device, cpus in zip(devices, cpu_slices(len(devices))):
        lines.append(f"RANK {int(str(device['device_id']))} {int(str(device['rank_id']))} {cpus}".rstrip())
    return lines


def write_json(table: dict, output: str) -> None:
    """Write atomically (common.fileio) so an interrupted run never leaves half a table."""
    from common.errors import UserError
    from common.fileio import atomic_write

    def dump(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(table, handle, indent=4)
            handle.write("\n")

    try:
        atomic_write(output, dump, "rank table", "choose a writable --output")
    except UserError as exc:
        raise TableError(str(exc)) from None
    print(f"rank table written to {os.path.abspath(output)}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--device_num", help='devices of this server as a half-open range, e.g. "[0,8)"')
    mode.add_argument("--merge", nargs="+", metavar="TABLE", help="merge these servers' tables, renumbering ranks")
    mode.add_argument("--check", metavar="TABLE", help="validate a table and print this server's launch plan")
    parser.add_argument("--server_ip", default="", help="this server's IP (default: the hostname's address)")
    parser.add_argument("--hccn_conf", default="/etc/hccn.conf", help="device IP file (address_N=IP lines)")
    parser.add_argument("--output", default="", help="output path (default hccl_<n>p_<devices>_<ip>.json)")
    parser.add_argument("--server_id", default=os.environ.get("SERVER_ID", ""),
                        help="--check: this server's server_id in a multi-server table (default $SERVER_ID)")
    parser.add_argument("--host_ips", default="", help="--check: this host's IPs, to find it in the table")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.check:
            print("\n".join(check_lines(args.check, args.server_id, args.host_ips.split(),
                                        os.environ.get("RANK_SIZE", ""))))
            return 0
        if args.merge:
            if not args.output:
                raise TableError("--merge needs --output PATH for the merged table")
            write_json(merge_tables(args.merge), args.output)
            return 0
        devices = parse_device_range(args.device_num)
        server_ip = check_ip(args.server_ip, "--server_ip") if args.server_ip else default_server_ip()
        table = build_table(devices, read_hccn_conf(args.hccn_conf), server_ip, args.hccn_conf)
        output = args.output or f"hccl_{len(devices)}p_{''.join(map(str, devices))}_{server_ip}.json"
        write_json(table, output)
        return 0
    except TableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
