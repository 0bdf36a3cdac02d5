"""Images in: ImageFolder trees and the image check (`folder`), per-image transforms (`transforms`), the ResNeSt
augmentations (`augment`) and the one pipeline builder (`pipeline`). `imagenet1k_classes.txt` holds the ImageNet-1k
class names in the torchvision/timm label order."""
from .folder import IMAGE_EXTENSIONS, CheckedImageSource, image_problem, scan_image_folder, split_dir
from .pipeline import create_dataset, default_workers
from .transforms import IMAGENET_MEAN, IMAGENET_STD, eval_transforms, train_transforms

__all__ = ["CheckedImageSource", "IMAGENET_MEAN", "IMAGENET_STD", "IMAGE_EXTENSIONS", "create_dataset",
           "default_workers", "eval_transforms", "image_problem", "scan_image_folder", "split_dir",
           "train_transforms"]
