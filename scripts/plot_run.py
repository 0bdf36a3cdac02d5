#!/usr/bin/env python3
"""Plot a training run: loss, learning rate, top-1/top-5 and img/s per epoch in one PNG with four panels.

    python scripts/plot_run.py RUN_DIR [--out PNG]

RUN_DIR is a train.py --output_dir; its metrics.jsonl holds one JSON object per epoch (common/training/hooks.py
MetricsWriter: epoch, loss, lr, img_per_sec, seconds, top1/top5 as fractions when evaluated, ...). The PNG goes to
RUN_DIR/metrics.png unless --out names another file. Needs matplotlib (requirements-test.txt); without it, or on a
missing folder, a missing or empty metrics.jsonl or a line that is not a JSON object with an epoch, one `error: ...`
line on stderr and exit code 2.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import Dict, List, Optional, Sequence

USER_ERROR_EXIT = 2
METRICS_FILE = "metrics.jsonl"
# (key in metrics.jsonl, label); older or other writers may spell img/s differently: the first key present is used
SPEED_KEYS = ("img_per_sec", "img/s", "imgs_per_sec")


class PlotError(Exception):
    """Bad input the user can fix: printed as one `error: ...` line, exit code 2."""


def read_metrics(run_dir: str) -> List[Dict]:
    """The per-epoch records of RUN_DIR/metrics.jsonl, sorted by epoch (the last record of an epoch wins)."""
    if not os.path.isdir(run_dir):
        raise PlotError(f"run folder '{run_dir}' does not exist (pass the --output_dir of a train.py run)")
    path = os.path.join(run_dir, METRICS_FILE)
    if not os.path.isfile(path):
        raise PlotError(f"'{path}' not found: train.py writes it after the first epoch of a run")
    by_epoch: Dict[int, Dict] = {}
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise PlotError(f"cannot read '{path}' ({exc})") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            raise PlotError(f"'{path}' line {number} is not valid JSON (a truncated write?): "
                            f"{line[:60]!r}") from None
        epoch = record.get("epoch") if isinstance(record, dict) else None
        if not isinstance(epoch, int) or isinstance(epoch, bool):
            raise PlotError(f"'{path}' line {number} is not a per-epoch record (a JSON object with an integer "
                            f"'epoch')")
        for key, value in record.items():
            if key != "epoch" and value is not None and not isinstance(value, (int, float)):
                raise PlotError(f"'{path}' line {number}: '{key}' is {value!r}, not a number")
        by_epoch[epoch] = record
    if not by_epoch:
        raise PlotError(f"'{path}' holds no epoch records (empty file)")
    return [by_epoch[e] for e in sorted(by_epoch)]


def _series(records: List[Dict], key: str, scale: float = 1.0):
    """(epochs, values) of the records that have `key` (None and NaN dropped)."""
    xs, ys = [], []
    for record in records:
        value = record.get(key)
        if value is not None and math.isfinite(value):
            xs.append(record["epoch"])
            ys.append(value * scale)
    return xs, ys


def make_figure(records: List[Dict], title: str = ""):
    """A matplotlib Figure with four axes: loss, LR, top-1/top-5 (%) and img/s per epoch (no pyplot state)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 7.5), dpi=100, layout="constrained")
    (loss_ax, lr_ax), (acc_ax, speed_ax) = figure.subplots(2, 2, sharex=True)
    speed_key = next((k for k in SPEED_KEYS if any(k in r for r in records)), SPEED_KEYS[0])
    panels = [
        (loss_ax, "training loss", [("loss", "loss", 1.0)]),
        (lr_ax, "learning rate (end of epoch)", [("lr", "lr", 1.0)]),
        (acc_ax, "validation accuracy (%)", [("top1", "top-1", 100.0), ("top5", "top-5", 100.0)]),
        (speed_ax, "training throughput (img/s)", [(speed_key, "img/s", 1.0)]),
    ]
    for axes, name, curves in panels:
        drawn = 0
        for key, label, scale in curves:
            xs, ys = _series(records, key, scale)
            if xs:
                axes.plot(xs, ys, marker="o", label=label)
                drawn += 1
        if len(curves) > 1 and drawn:
            axes.legend()
        if not drawn:
            axes.text(0.5, 0.5, f"no '{curves[0][0]}' in {METRICS_FILE}", ha="center", va="center",
                      transform=axes.transAxes, color="grey")
        axes.set_title(name)
        axes.grid(True, alpha=0.3)
    for axes in (acc_ax, speed_ax):
        axes.set_xlabel("epoch")
    # epochs are whole numbers: no 1.5 ticks on short runs
    from matplotlib.ticker import MaxNLocator

    speed_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        figure.suptitle(title)
    return figure


def _import_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise PlotError("matplotlib is not installed; install it with 'python -m pip install matplotlib' "
                        "(it is in requirements-test.txt)") from None


def plot_run(run_dir: str, out: Optional[str] = None) -> str:
    """Write the four-panel PNG of RUN_DIR's metrics.jsonl; returns its path."""
    records = read_metrics(run_dir)
    out = out or os.path.join(run_dir, "metrics.png")
    parent = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(parent):
        raise PlotError(f"cannot write '{out}': folder '{parent}' does not exist")
    _import_matplotlib()
    figure = make_figure(records, title=os.path.basename(os.path.normpath(os.path.abspath(run_dir))))
    try:
        figure.savefig(out, format="png")
    except OSError as exc:
        raise PlotError(f"cannot write '{out}' ({exc.strerror or exc})") from None
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="a train.py --output_dir holding metrics.jsonl")
    parser.add_argument("--out", default=None, help="PNG to write (default RUN_DIR/metrics.png)")
    args = parser.parse_args(argv)
    try:
        out = plot_run(args.run_dir, args.out)
    except PlotError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return USER_ERROR_EXIT
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
