"""ResNeXt-50 32x4d as the entry points build it: each module of src/ is one part of it (common/entry.py)."""
from common.entry import ModelFace

MODEL = ModelFace.from_package(__name__)  # src/config.py now; the other parts when a command needs them
