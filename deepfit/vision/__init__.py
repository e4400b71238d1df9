"""Image classification: folders, CSV files or arrays of images, batch augmentation on the device, CNNs
and transfer learning.

Example:
    >>> from deepfit.vision import ImageDataLoaders, aug_transforms
    >>> dls = ImageDataLoaders.from_folder("pets", size=128, batch_tfms=aug_transforms(), seed=42)
    >>> dls.show_batch(fname="batch.png")
"""
from ..export import register_dls
from .augment import (IMAGENET_STATS, Affine, BatchTransform, Brightness, Contrast, Cutout, Flip, GeometricTransform,
                      Normalize, Perspective, RandomCrop, RandomResizedCrop, Rotate, Zoom, apply_tfms, aug_transforms)
from .data import ImageBatchTransform, ImageDataError, ImageDataLoaders, get_image_files, resize_images
from .decode import ImageDecodeError, decode_image, decode_images
from .show import show_images
from .callbacks import AlternatingFlip, ChannelsLast, MixUp, progressive_resize
from .interpret import ClassificationInterpretation
from .learner import (AdaptiveConcatPool2d, ImageClassifier, VisionLearner, accuracy_multi, cnn_learner, create_body,
                      create_head, load_pretrained, vision_learner)
from .models import ARCHS
from .style import FeatureExtractor, FeatureLoss, RandomFeatures, get_extractor, gram_matrix
from .speedrun import fit_speedrun, speedrun_learner, speedrun_tta, speedrun_tta_tfms, translate
from .style_transfer import StyleTransferError, StyleTransferResult, style_transfer

register_dls("ImageDataLoaders", ImageDataLoaders.from_state)

__all__ = ["ImageDataLoaders", "ImageBatchTransform", "ImageDataError", "ImageDecodeError", "get_image_files",
           "resize_images", "decode_image", "decode_images", "show_images", "IMAGENET_STATS", "Affine",
           "BatchTransform", "Brightness", "Contrast", "Cutout", "Flip", "GeometricTransform", "Normalize",
           "Perspective", "RandomCrop", "RandomResizedCrop", "Rotate", "Zoom", "apply_tfms", "aug_transforms"]
__all__ += ["AlternatingFlip", "ChannelsLast", "MixUp", "progressive_resize", "ClassificationInterpretation", "AdaptiveConcatPool2d",
            "ImageClassifier", "VisionLearner", "accuracy_multi", "cnn_learner", "create_body", "create_head",
            "load_pretrained", "vision_learner", "ARCHS"]
__all__ += ["FeatureExtractor", "FeatureLoss", "RandomFeatures", "get_extractor", "gram_matrix", "StyleTransferError",
            "StyleTransferResult", "style_transfer"]
__all__ += ["fit_speedrun", "speedrun_learner", "speedrun_tta", "speedrun_tta_tfms", "translate"]
