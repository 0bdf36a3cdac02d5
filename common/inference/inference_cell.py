"""The exported graph's cell: a classifier in eval mode with an optional softmax, its input named `image`.

Apart from common.inference.export so that export.py's argument checks run before MindSpore is imported.
"""
from __future__ import annotations

from mindspore import nn


class InferenceNet(nn.Cell):
    """Classifier logits (or probabilities with `with_softmax`) for a batch of normalised NCHW images."""

    def __init__(self, backbone: nn.Cell, with_softmax: bool = False) -> None:
        super().__init__()
        self.backbone = backbone
        self.with_softmax = with_softmax
        self.softmax = nn.Softmax(axis=-1)

    def construct(self, image):
        out = self.backbone(image)
        if self.with_softmax:
            out = self.softmax(out)
        return out


def inference_cell(net: nn.Cell, softmax: bool = False) -> InferenceNet:
    """`net` in eval mode, optionally followed by a softmax over the classes; its input is named `image`."""
    cell = InferenceNet(net, softmax)
    cell.set_train(False)
    return cell
