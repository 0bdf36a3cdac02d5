"""ResNeXt-152 64x4d export to MINDIR/ONNX/AIR: python export.py --help lists the options (see the README)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository root: common/
from src import MODEL  # noqa: E402  this folder's src/: recipe, network, data, loss, LR, eval callback

if __name__ == "__main__":
    sys.exit(MODEL.run("export"))
