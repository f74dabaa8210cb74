"""Whole-photo data for super-resolution and colorization: the built-in set, aligned SR crops whose LR is
the whole image's MATLAB bicubic, explicit LR/HR folders, and the errors for bad folders."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from zoo.data import PHOTO_SETS, PhotoDataModule, SRDataModule, ensure_photo_builtin
from zoo.data.photos import SRCrops, WholeSRPairs
from zoo.errors import DataError, ZooError
from zoo.metrics.resize import make_lr


def _photo(path, w, h, seed=0, mode="RGB"):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    img = Image.fromarray(a)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.convert(mode).save(path)
    return a


def test_builtin_photo_set_holds_out_whole_photographs(tmp_path):
    root = ensure_photo_builtin("hr-photos", cache_dir=tmp_path)
    manifest = json.loads((root / "manifest.json").read_text())
    train = {v["photo"] for k, v in manifest["files"].items() if k.startswith("train/")}
    val = {v["photo"] for k, v in manifest["files"].items() if k.startswith("val/")}
    assert train == set(PHOTO_SETS["hr-photos"]["train"]) and val == set(PHOTO_SETS["hr-photos"]["val"])
    assert not train & val and len(val) >= 3
    for rel, entry in manifest["files"].items():
        w, h = Image.open(root / rel).size
        assert max(w, h) <= 640 and [w, h] == entry["size"]
        if max(entry["photo_size"]) <= 640:  # stored as shipped: whole photographs, not crops
            assert entry["size"] == entry["photo_size"]
    # deterministic: a second build writes the same bytes
    again = ensure_photo_builtin("hr-photos", cache_dir=tmp_path / "other")
    assert json.loads((again / "manifest.json").read_text())["files"] == manifest["files"]


def test_sr_crops_equal_crops_of_the_whole_image_lr(tmp_path):
    hr_file = tmp_path / "train" / "a.png"
    _photo(hr_file, 61, 50)
    for scale in (2, 4):
        crops = SRCrops([hr_file], None, scale, crop_size=8 * scale, crops_per_image=4, flip=False)
        _, hr, _ = crops.read_pair(0)
        assert hr.shape[1] % scale == 0 and hr.shape[2] % scale == 0
        whole = make_lr(hr, scale)
        seen = set()
        for seed in range(12):
            item = crops[(seed % 4, seed)]
            assert item["hr"].shape == (3, 8 * scale, 8 * scale) and item["lr"].shape == (3, 8, 8)
            # find where the HR crop came from (it sits on the scale grid) and compare LR pixels exactly
            hits = [(y, x) for y in range(0, hr.shape[1] - 8 * scale + 1, scale)
                    for x in range(0, hr.shape[2] - 8 * scale + 1, scale)
                    if torch.equal(hr[:, y:y + 8 * scale, x:x + 8 * scale], item["hr"])]
            assert len(hits) == 1
            y, x = hits[0]
            seen.add((y, x))
            assert torch.equal(item["lr"], whole[:, y // scale:y // scale + 8, x // scale:x // scale + 8])
        assert len(seen) > 3  # random positions, borders included over enough draws
    # same item seed -> same crop; flips keep LR and HR aligned
    flips = SRCrops([hr_file], None, 4, crop_size=16, flip=True)
    a, b = flips[(0, 7)], flips[(0, 7)]
    assert torch.equal(a["lr"], b["lr"]) and torch.equal(a["hr"], b["hr"])
    for seed in range(10):
        item = flips[(0, seed)]
        assert torch.allclose(make_lr(item["hr"], 4)[:, 1:-1, 1:-1], item["lr"][:, 1:-1, 1:-1], atol=0.2)


def test_explicit_lr_hr_folders_pair_by_name_and_check_sizes(tmp_path):
    root = tmp_path / "set"
    for split in ("train", "val"):
        for name, seed in (("x", 1), ("y", 2)):
            hr = _photo(root / split / "HR" / f"{name}.png", 64, 48, seed)
            (root / split / "LR").mkdir(parents=True, exist_ok=True)
            Image.fromarray(hr[::4, ::4]).save(root / split / "LR" / f"{name}.png")
    dm = SRDataModule(root=str(root), scale=4, crop_size=16, num_workers=0, batch_size=2)
    dm.setup("fit")
    item = dm.train_dataset[(0, 3)]
    hr = item["hr"]
    assert item["lr_path"].endswith("LR/x.png") and item["hr_path"].endswith("HR/x.png")
    # the LR crop is the same region of the LR file (nearest-neighbour LR here: LR = HR[::4, ::4])
    assert torch.equal(item["lr"], hr[:, ::4, ::4]) or torch.equal(item["lr"], hr.flip(-1)[:, ::4, ::4].flip(-1))
    batch = next(iter(dm.val_dataloader()))
    assert batch["lr"].shape == (1, 3, 12, 16) and batch["hr"].shape == (1, 3, 48, 64)
    assert [b["hr_path"][0] for b in dm.test_dataloader()] == [b["hr_path"][0] for b in dm.val_dataloader()]
    _photo(root / "test" / "t.png", 40, 32, 9)  # a test/ split beside val/: test() uses it, with bicubic LR
    (test_batch,) = list(dm.test_dataloader())
    assert test_batch["hr_path"][0].endswith("test/t.png") and test_batch["lr"].shape == (1, 3, 8, 10)
    # a wrong LR size is named with both files
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(root / "val" / "LR" / "y.png")
    with pytest.raises(DataError, match=r"y\.png.*4x"):
        WholeSRPairs([root / "val" / "HR" / "y.png"], [root / "val" / "LR" / "y.png"], 4, False)[0]
    # an HR file without its LR partner
    _photo(root / "train" / "HR" / "z.png", 64, 48, 3)
    with pytest.raises(DataError, match="z"):
        SRDataModule(root=str(root), scale=4, crop_size=16, num_workers=0).setup("fit")


def test_sr_datamodule_scale_and_crop_errors(tmp_path):
    _photo(tmp_path / "imgs" / "a.png", 40, 40)
    _photo(tmp_path / "imgs" / "b.png", 40, 40, 1)
    with pytest.raises(DataError, match="multiple of the scale"):
        SRDataModule(root=str(tmp_path / "imgs"), scale=4, crop_size=30)
    with pytest.raises(DataError, match="scale must be one of"):
        SRDataModule(root=str(tmp_path / "imgs"), scale=5, crop_size=30)
    dm = SRDataModule(root=str(tmp_path / "imgs"), scale=4, crop_size=64, num_workers=0)
    dm.setup("fit")  # root without train/: 1 of 2 images held out
    assert len(dm.train_dataset) == 1 and len(dm.val_dataset) == 1
    with pytest.raises(DataError, match="smaller than the HR crop"):
        dm.train_dataset[(0, 0)]
    with pytest.raises(DataError, match="does not exist"):
        SRDataModule(root=str(tmp_path / "missing")).setup("fit")
    (tmp_path / "empty" / "train").mkdir(parents=True)
    with pytest.raises(DataError, match="no images"):
        SRDataModule(root=str(tmp_path / "empty")).setup("fit")

    class _Model:
        io = {"scale": 2}

    class _Trainer:
        lightning_module = _Model()

    follows = SRDataModule(root=str(tmp_path / "imgs"), crop_size=16, num_workers=0)
    follows.trainer = _Trainer()
    assert follows.scale == 2
    clash = SRDataModule(root=str(tmp_path / "imgs"), scale=4, crop_size=16, num_workers=0)
    clash.trainer = _Trainer()
    with pytest.raises(DataError, match="disagrees with the model's scale 2"):
        clash.setup("fit")


def test_photo_datamodule_crops_whole_val_and_odd_images(tmp_path):
    root = tmp_path / "photos"
    _photo(root / "train" / "big.png", 80, 60)
    _photo(root / "train" / "gray.png", 70, 64, 1, mode="L")
    _photo(root / "train" / "small.png", 20, 30, 2)  # smaller than the crop: scaled up
    _photo(root / "val" / "v.png", 33, 47, 3, mode="P")
    (root / "train" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    dm = PhotoDataModule(root=str(root), crop_size=32, crops_per_image=3, batch_size=4, num_workers=0)
    dm.setup("fit")
    assert len(dm.train_dataset) == 4 * 3
    with pytest.raises(ZooError, match="broken.png"):
        [dm.train_dataset[(i, i)] for i in range(12)]
    dm = PhotoDataModule(root=str(root), crop_size=32, crops_per_image=3, batch_size=4, num_workers=0, skip_bad=True)
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (4, 3, 32, 32) and 0 <= batch["image"].min() and batch["image"].max() <= 1
    val = list(dm.val_dataloader())
    assert len(val) == 1 and val[0]["image"].shape == (1, 3, 47, 33)
    item = dm.train_dataset[(3, 5)]  # the grayscale file arrives as RGB with equal channels
    assert item["path"].endswith("gray.png") and torch.equal(item["image"][0], item["image"][1])
    assert dm.dataset_name == "photos"
