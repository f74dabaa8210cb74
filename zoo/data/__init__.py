"""Folder datasets, paired-safe transforms, the `ImageFolderDataModule` and built-in datasets."""

from __future__ import annotations

from zoo.data.builtin import (
    BUILTIN_DATASETS, CONTENT_SETS, PHOTO_SETS, STYLE_SETS, ensure_builtin, ensure_content_builtin, ensure_photo_builtin,
    ensure_style_builtin,
)
from zoo.data.datamodule import ImageFolderDataModule
from zoo.data.folders import AlignedDataset, PairedDataset, UnpairedDataset, list_images
from zoo.data.layouts import LAYOUTS, detect_layout
from zoo.data.photos import PhotoDataModule, SRDataModule
from zoo.data.style import ContentStyleDataModule
from zoo.data.transforms import PREPROCESS_MODES, PairedTransform

__all__ = [
    "ImageFolderDataModule",
    "ContentStyleDataModule",
    "PhotoDataModule",
    "SRDataModule",
    "PHOTO_SETS",
    "ensure_photo_builtin",
    "CONTENT_SETS",
    "STYLE_SETS",
    "ensure_content_builtin",
    "ensure_style_builtin",
    "ensure_builtin",
    "BUILTIN_DATASETS",
    "AlignedDataset",
    "PairedDataset",
    "UnpairedDataset",
    "list_images",
    "detect_layout",
    "LAYOUTS",
    "PREPROCESS_MODES",
    "PairedTransform",
]
