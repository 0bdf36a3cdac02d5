#!/usr/bin/env python3
"""Convert a torchvision/timm state dict (.pth, .pt, .safetensors) or a MindCV/ModelZoo MindSpore checkpoint (.ckpt)
into a checkpoint of this zoo.

    python scripts/convert_weights.py --arch resnext50_32x4d --src resnext50_32x4d-1a0047aa.pth --out r50.ckpt
    python scripts/convert_weights.py --arch resnext50_32x4d --src resnext50_32x4d-af8aba16.ckpt --out r50.ckpt
    python scripts/convert_weights.py --arch resnest50 --src resnest50-f2e7fc9c.ckpt --from mindcv --out rs50.ckpt

PyTorch is not needed: .pth files are read with a restricted unpickler that runs no pickle code. A .ckpt's source is
recognised by its key names (common/weights/mindspore_import.py); MindCV's ResNeSt-50 has this zoo's names, so it
needs --from mindcv. A MindCV/ModelZoo checkpoint converts with pool_padding 'same', recorded in the output.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from common import list_models  # noqa: E402
from common.errors import UserError, cli_main  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", required=True, choices=list_models(), help="target architecture")
    parser.add_argument("--src", required=True, help="PyTorch state dict (.pth/.pt zip, .safetensors) or a MindCV/"
                                                     "ModelZoo MindSpore checkpoint (.ckpt)")
    parser.add_argument("--out", required=True, help="MindSpore checkpoint to write (.ckpt)")
    parser.add_argument("--from", dest="source", choices=("mindcv", "modelzoo"), default=None,
                        help=".ckpt source when its key names do not tell (default: recognised by its keys)")
    parser.add_argument("--ema", action="store_true", help=".ckpt: take the EMA weights ('ema.' entries)")
    return parser.parse_args(argv)


@cli_main
def main(argv=None) -> int:
    args = parse_args(argv)
    if not os.path.isfile(args.src):
        raise UserError(f"--src '{args.src}' does not exist; pass the path of a .pth/.pt/.safetensors file")
    out_dir = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(out_dir):
        raise UserError(f"--out folder '{out_dir}' does not exist; create it first")
    # Heavy imports after argument checks so mistakes answer quickly.
    import mindspore as ms

    from common.weights.checkpoint import save_checkpoint_atomic
    from common.weights.torch_import import convert_state_dict
    from common.weights.torch_reader import load_state_dict

    if args.src.endswith(".ckpt"):
        from common.weights.checkpoint import read_checkpoint
        from common.weights.mindspore_import import convert_mindspore

        params, num_classes, source = convert_mindspore(args.arch, read_checkpoint(args.src), args.source, args.ema)
        kind = f"{source} checkpoint, pool_padding 'same'"
    else:
        if args.source or args.ema:
            raise UserError("--from and --ema apply to a MindSpore .ckpt source only")
        params, num_classes = convert_state_dict(args.arch, load_state_dict(args.src))
        kind = "PyTorch state dict"
    out = args.out if args.out.endswith(".ckpt") else args.out + ".ckpt"
    save_checkpoint_atomic([{"name": k, "data": ms.Tensor(v)} for k, v in params.items()], out)
    total = sum(int(v.size) for v in params.values() if v.dtype != "int32")
    print(f"wrote {out}: {args.arch} from a {kind}, {num_classes} classes, {len(params)} tensors, {total:,} values")
    return 0


if __name__ == "__main__":
    sys.exit(main())
