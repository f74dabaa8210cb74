"""Image metrics under pinned protocols (torchmetrics `Metric`s inside); every result records its protocol.

    from zoo.metrics import FID, KID, LPIPS, LPIPSDiversity, PSNR, SSIM
    psnr = PSNR(protocol="sr-y", scale=4)
    psnr.update(preds, target, index=idx)   # BCHW in [0, 1] or uint8; idx: dataset indices
    result = psnr.compute()                 # a float with .protocol, .comparable, .n, .notes
"""

from zoo.metrics.backbones import BACKBONES, find_backbone_weights
from zoo.metrics.base import MetricResult, PerItemMetric, Protocol, ZooMetric, as_uint8, check_images
from zoo.metrics.fid import FID, KID, InceptionFeatures
from zoo.metrics.lpips import LPIPS, LPIPSDiversity
from zoo.metrics.pixel import PSNR, SSIM, psnr, rgb_to_y, ssim
from zoo.metrics.resize import imresize_matlab, make_lr, mod_crop
from zoo.metrics.swd import PatchSWD, patch_swd, sliced_wasserstein

__all__ = [
    "MetricResult", "PerItemMetric", "Protocol", "ZooMetric", "as_uint8", "check_images",
    "BACKBONES", "find_backbone_weights",
    "FID", "KID", "InceptionFeatures", "LPIPS", "LPIPSDiversity", "PSNR", "SSIM",
    "psnr", "ssim", "rgb_to_y", "imresize_matlab", "make_lr", "mod_crop", "PatchSWD", "patch_swd", "sliced_wasserstein",
]
