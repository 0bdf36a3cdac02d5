"""ResNeSt-50 evaluation under MindCV's name: python validate.py -c <yaml> --data_dir DIR --ckpt_path CKPT.

The same command as eval.py (top-1/top-5); --ckpt_path names the checkpoint to evaluate, as in MindCV.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository root: common/
from src import MODEL  # noqa: E402  this folder's src/: recipe, network, data, loss, LR, eval callback

if __name__ == "__main__":
    sys.exit(MODEL.run("validate"))
