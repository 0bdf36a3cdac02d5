#!/usr/bin/env python3
"""What the pool_padding switch is worth: a MindCV network (mindcv==0.3.0, random weights, random BN statistics)
imported here and run with pool_padding 'same' (MindCV's pooling) and 'symmetric' (torchvision/timm's).

    python scripts/measure_pool_padding.py --arch resnext50_32x4d --sizes 224 65 --batch 4

Prints, per size, max |logit difference| / max |logit| against MindCV's own forward for both settings, and how often
the top-1 class of 'symmetric' differs from MindCV's. Random weights, so the numbers show the size of the effect, not
an accuracy change on ImageNet.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="resnext50_32x4d", choices=("resnext50_32x4d", "resnext152_64x4d",
                                                                      "resnest50"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[224])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--num_classes", type=int, default=1000)
    args = parser.parse_args(argv)
    import mindspore as ms
    import numpy as np
    from mindcv.models import create_model as mindcv_model

    from common.compat import set_context
    from common.models import create_model
    from common.weights.mindspore_import import convert_mindspore

    set_context("pynative", "CPU")
    rng = np.random.default_rng(0)
    theirs = mindcv_model(args.arch, num_classes=args.num_classes)
    for p in theirs.get_parameters():
        if p.name.endswith(("moving_variance", "gamma")):
            p.set_data(ms.Tensor(rng.uniform(0.5, 1.5, p.shape).astype(np.float32)))
        elif p.name.endswith(("moving_mean", "beta")):
            p.set_data(ms.Tensor(rng.normal(0, 0.1, p.shape).astype(np.float32)))
    theirs.set_train(False)
    params, classes, _ = convert_mindspore(args.arch, {p.name: p for p in theirs.get_parameters()}, "mindcv")
    nets = {}
    for padding in ("same", "symmetric"):
        net = create_model(args.arch, num_classes=classes, pool_padding=padding)
        values = {k: ms.Parameter(ms.Tensor(v), name=k) for k, v in params.items() if k in
                  {q.name for q in net.get_parameters()}}
        ms.load_param_into_net(net, values, strict_load=True)
        net.set_train(False)
        nets[padding] = net
    for size in args.sizes:
        x = ms.Tensor(rng.normal(size=(args.batch, 3, size, size)).astype(np.float32))
        ref = theirs(x).asnumpy()
        row = [f"{args.arch} {size}px batch {args.batch}:"]
        for padding, net in nets.items():
            out = net(x).asnumpy()
            rel = np.abs(out - ref).max() / np.abs(ref).max()
            flips = int((out.argmax(1) != ref.argmax(1)).sum())
            row.append(f"{padding}: max|dlogit|/max|logit| {rel:.2e}, top-1 differs on {flips}/{args.batch}")
        print(" ".join(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
