"""Semantic segmentation: a class for every pixel (CamVid street scenes in the course).

- `SegmentationDataLoaders.from_folders` / `from_label_func`: images and their masks (PNG label maps), a
  codes file naming the classes, a `void` code that losses and metrics ignore; the same geometric
  augmentation for image and mask (nearest neighbour for the mask), lighting for the image only.
- `unet_learner(dls, arch)`: a U-Net on any CNN body (`DynamicUnet`); `tiramisu_learner(dls,
  "fc_densenet103")`: the fully convolutional DenseNets of Jégou et al. 2017 (`FCDenseNet`).
- `segmentation_loss` (cross entropy ignoring void, optional class weights), `PixelAccuracy`, `MeanIoU`,
  `ClassIoU`; `SegmentationLearner.per_class_iou`, `show_results`; `plot_class_iou`.

Example:
    >>> from deepfit.vision import aug_transforms
    >>> from deepfit.vision.segment import SegmentationDataLoaders, unet_learner
    >>> dls = SegmentationDataLoaders.from_folders("camvid/train", "camvid/trainannot", codes="camvid/codes.txt",
    ...     void="Unlabelled", valid_images="camvid/val", valid_masks="camvid/valannot", size=(180, 240),
    ...     batch_tfms=aug_transforms(max_warp=0))
    >>> learn = unet_learner(dls, "resnet34")
    >>> learn.fit_one_cycle(30, 2e-3)
    >>> learn.show_results(fname="results.png")
"""
from ...export import register_dls
from .augment import apply_tfms_seg
from .data import (SegmentationBatchTransform, SegmentationDataError, SegmentationDataLoaders, decode_mask,
                   read_codes, resolve_void)
from .interpret import class_colors, colorize, plot_class_iou, save_mask, show_segmentation
from .learner import SegmentationLearner, segmentation_learner, tiramisu_learner, unet_learner
from .metrics import (ClassIoU, ConfusionMetric, MeanIoU, PixelAccuracy, confusion_matrix, iou_from_confusion,
                      median_frequency_weights, segmentation_loss, segmentation_metrics)
from .tiramisu import TIRAMISU_CONFIGS, FCDenseNet, fc_densenet56, fc_densenet67, fc_densenet103
from .unet import DynamicUnet, PixelShuffleICNR, UnetBlock, child_sizes, icnr_, skip_indices

register_dls("SegmentationDataLoaders", SegmentationDataLoaders.from_state,
             fields={"codes": [str], "void?": int, "size": [int], "resize?": str, "channels?": int, "mean?": [float],
                     "std?": [float], "eps?": float, "bs?": int})

__all__ = ["SegmentationDataLoaders", "SegmentationBatchTransform", "SegmentationDataError", "decode_mask",
           "read_codes", "resolve_void", "apply_tfms_seg", "class_colors", "colorize", "plot_class_iou", "save_mask",
           "show_segmentation", "SegmentationLearner", "segmentation_learner", "tiramisu_learner", "unet_learner",
           "ClassIoU", "ConfusionMetric", "MeanIoU", "PixelAccuracy", "confusion_matrix", "iou_from_confusion",
           "segmentation_loss", "segmentation_metrics", "median_frequency_weights", "TIRAMISU_CONFIGS", "FCDenseNet",
           "fc_densenet56", "fc_densenet67", "fc_densenet103", "DynamicUnet", "PixelShuffleICNR", "UnetBlock",
           "child_sizes", "icnr_", "skip_indices"]
