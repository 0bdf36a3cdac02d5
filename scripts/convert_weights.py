#!/usr/bin/env python3
"""Convert a torchvision/timm state dict (.pth, .pt, .safetensors) or a MindCV/ModelZoo MindSpore checkpoint (.ckpt)
into a checkpoint of this zoo.

    python scripts/convert_weights.py --arch resnext50_32x4d --src resnext50_32x4d-1a0047aa.pth --out r50.ckpt
    python scripts/convert_weights.py --arch resnext50_32x4d --src resnext50_32x4d-af8aba16.ckpt --out r50.ckpt
    python scripts/convert_weights.py --arch resnest50 --src resnest50-f2e7fc9c.ckpt --from mindcv --out rs50.ckpt

PyTorch is not needed: .pth files are read with a restricted unpickler that runs no pickle code. A .ckpt's source is
recognised by its key names (common/weights/mindspore_import.py); MindCV's ResNeSt-50 has this zoo's names, so it
needs --from mindcv. MindCV and ModelZoo ResNeXt checkpoints convert with pool_padding 'same', recorded in the
output; the ModelZoo's ResNeSt50 pads as timm does.

Beside the checkpoint, `<out>.preprocess.json` records the eval preset the weights' authors measured their accuracy
with (common.data.presets), so eval.py, predict.py and export.py use it by themselves. --eval_preset chooses it;
without it: zoo (MindSpore's resize, as MindCV and the ModelZoo evaluate) for a .ckpt, timm for resnest50 (timm's
resnest50d), torchvision_v2 for torchvision's IMAGENET1K_V2 ResNeXt-50 file (resnext50_32x4d-1a0047aa.pth),
torchvision_v1 for any other ResNeXt file.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from common import list_models  # noqa: E402
from common.data.presets import PRESET_NAMES, resolve_preset, write_record  # noqa: E402
from common.errors import UserError, cli_main  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", required=True, choices=list_models(), help="target architecture")
    parser.add_argument("--src", required=True, help="PyTorch state dict (.pth/.pt zip, .safetensors) or a MindCV/"
                                                     "ModelZoo MindSpore checkpoint (.ckpt)")
    parser.add_argument("--out", required=True, help="MindSpore checkpoint to write (.ckpt)")
    parser.add_argument("--eval_preset", default="", choices=("", *PRESET_NAMES),
                        help="preprocessing the weights were evaluated with ('' = guessed from --arch and --src)")
    parser.add_argument("--from", dest="source", choices=("mindcv", "modelzoo"), default=None,
                        help=".ckpt source when its key names do not tell (default: recognised by its keys)")
    parser.add_argument("--ema", action="store_true", help=".ckpt: take the EMA weights ('ema.' entries)")
    return parser.parse_args(argv)


def default_preset(arch: str, src: str) -> str:
    """The weight source's eval preset, from the architecture and the file name (see the module doc)."""
    if src.endswith(".ckpt"):
        return "zoo"
    if arch.startswith("resnest"):
        return "timm"
    return "torchvision_v2" if "1a0047aa" in os.path.basename(src) else "torchvision_v1"


@cli_main
def main(argv=None) -> int:
    args = parse_args(argv)
    if not os.path.isfile(args.src):
        raise UserError(f"--src '{args.src}' does not exist; pass the path of a .pth/.pt/.safetensors file")
    out_dir = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(out_dir):
        raise UserError(f"--out folder '{out_dir}' does not exist; create it first")
    # MindSpore loads after what can be checked without it, so that mistakes answer in a fraction of a second: the
    # arguments, and a PyTorch source read in full (a restricted unpickler, NumPy) or a .ckpt's names and shapes
    if args.src.endswith(".ckpt"):
        from common.weights.checkpoint import read_checkpoint_shapes

        read_checkpoint_shapes(args.src)
        state = None
    else:
        if args.source or args.ema:
            raise UserError("--from and --ema apply to a MindSpore .ckpt source only")
        from common.weights.torch_reader import load_state_dict

        state = load_state_dict(args.src)
    import mindspore as ms

    from common.weights.checkpoint import save_checkpoint_atomic

    if state is None:
        from common.weights.checkpoint import read_checkpoint
        from common.weights.mindspore_import import convert_mindspore, source_padding

        params, num_classes, source = convert_mindspore(args.arch, read_checkpoint(args.src), args.source, args.ema)
        kind = f"{source} checkpoint, pool_padding '{source_padding(source, args.arch)}'"
    else:
        from common.weights.torch_import import convert_state_dict

        params, num_classes = convert_state_dict(args.arch, state)
        kind = "PyTorch state dict"
    out = args.out if args.out.endswith(".ckpt") else args.out + ".ckpt"
    save_checkpoint_atomic([{"name": k, "data": ms.Tensor(v)} for k, v in params.items()], out)
    total = sum(int(v.size) for v in params.values() if v.dtype != "int32")
    preset = resolve_preset(args.eval_preset or default_preset(args.arch, args.src))
    side = write_record(out, preset, input="checkpoint", source=os.path.basename(args.src))
    print(f"wrote {out}: {args.arch} from a {kind}, {num_classes} classes, {len(params)} tensors, {total:,} values; "
          f"eval preset {preset.name} in {side}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
