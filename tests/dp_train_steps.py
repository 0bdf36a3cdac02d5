"""A few steps of train.py's own training step (common.training.step.build_train_step) on fixed random data, for the
msrun data-parallel test (tests/test_msrun.py).

    python tests/dp_train_steps.py --output_dir OUT_DIR [--steps 3] [--global_batch 4]

It takes train.py's launcher arguments (--data_dir, --device_target are accepted; the data are generated), so the
launchers can start it in train.py's place through ZOO_ENTRY_PY.

Run alone it trains on the whole global batch each step; under msrun each rank takes its contiguous slice of the
same global batch and MindSpore's DATA_PARALLEL mean-reduces the gradients, so the result must be the same.
BatchNorm uses its running statistics (eval mode inside the training step): batch statistics of a half batch differ
from those of the whole batch, which would make the comparison meaningless. Writes OUT_DIR/weights_rank<r>.npz
and OUT_DIR/initial.npz (the weights before the first step).
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--data_dir", default="")
    parser.add_argument("--device_target", default="CPU", choices=["CPU"])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--global_batch", type=int, default=4)
    parser.add_argument("--image_size", type=int, default=32)
    parser.add_argument("--fail_rank", type=int, default=-1, help="this rank exits 1 right after init()")
    args = parser.parse_args()

    import mindspore as ms
    from mindspore import nn

    from common.config import load_config
    from common.context import init_context
    from common.models import create_model
    from common.training.step import build_train_step

    info = init_context("CPU", mode="pynative")
    if info.rank == args.fail_rank:
        sys.exit(f"rank {info.rank} fails on purpose (--fail_rank)")
    ms.set_seed(0)  # same initial weights on every rank and in the single-process run
    net = create_model("resnext50_32x4d", num_classes=10)
    cfg = load_config(None, ["--num_classes", "10", "--lr", "0.05", "--lr_scheduler", "constant", "--epoch_size",
                             str(args.steps), "--batch_size", str(args.global_batch // info.group_size),
                             "--amp_level", "O0", "--loss_scale", "1"])
    step = build_train_step(net, cfg, steps_per_epoch=1, group_size=info.group_size)
    for cell in net.cells_and_names():
        if isinstance(cell[1], nn.BatchNorm2d):
            cell[1].set_train(False)

    os.makedirs(args.output_dir, exist_ok=True)
    if info.is_main:
        np.savez(os.path.join(args.output_dir, "initial.npz"), **{p.name: p.asnumpy() for p in net.get_parameters()})
    rng = np.random.default_rng(1234)
    per_rank = args.global_batch // info.group_size
    lo, hi = info.rank * per_rank, (info.rank + 1) * per_rank
    for index in range(args.steps):
        images = rng.standard_normal((args.global_batch, 3, args.image_size, args.image_size)).astype(np.float32)
        labels = rng.integers(0, 10, size=args.global_batch).astype(np.int32)
        loss = step(ms.Tensor(images[lo:hi]), ms.Tensor(labels[lo:hi]))
        print(f"rank {info.rank}/{info.group_size} step {index} loss {float(loss.asnumpy()):.6f}", flush=True)
    weights = {p.name: p.asnumpy() for p in net.get_parameters()}
    np.savez(os.path.join(args.output_dir, f"weights_rank{info.rank}.npz"), **weights)


if __name__ == "__main__":
    main()
