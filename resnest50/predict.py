"""ResNeSt-50: python predict.py --help lists the options (see the README)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from common.entry import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main("predict", os.path.dirname(os.path.abspath(__file__))))
