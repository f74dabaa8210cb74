"""zoo.data: layouts, detection, paired-safe transforms, bad files, the built-in dataset."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import time
import warnings
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image

from zoo.data import ImageFolderDataModule, ensure_builtin, list_images
from zoo.data.builtin import builtin_dir
from zoo.errors import DataError, ImageReadError

RED, BLUE, GREEN = (255, 0, 0), (0, 0, 255), (0, 255, 0)
SMALL = dict(load_size=36, crop_size=32, num_workers=0)


def _solid(path: Path, color, size=(20, 20)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


def _noise_img(seed: int, size=(40, 40)) -> Image.Image:
    a = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(a)


def _aligned(path: Path, left=RED, right=BLUE, half=20, odd_column=None) -> Path:
    """An A|B image: left half `left`, right half `right`, optional extra last column."""
    w = 2 * half + (1 if odd_column else 0)
    a = np.zeros((half, w, 3), dtype=np.uint8)
    a[:, :half] = left
    a[:, half : 2 * half] = right
    if odd_column:
        a[:, -1] = odd_column
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a).save(path)
    return path


def _in_range(color) -> torch.Tensor:
    return torch.tensor(color, dtype=torch.float32).view(3, 1, 1) / 255 * 2 - 1


def _batch(dm: ImageFolderDataModule, split: str = "train") -> dict:
    dm.setup("fit")
    return next(iter(getattr(dm, f"{split}_dataloader")()))


def _stem(p: str) -> str:
    return Path(p).stem


# ----------------------------------------------------------------------------------------- aligned


@pytest.fixture
def data_aligned_root(tmp_path) -> Path:
    root = tmp_path / "facades"
    for split, n in (("train", 4), ("val", 2), ("test", 2)):
        for i in range(n):
            _aligned(root / split / f"{i}.png", odd_column=GREEN if i == 0 else None)
    return root


def test_aligned_split_halves_and_batch_format(data_aligned_root, caplog):
    caplog.set_level(logging.INFO, logger="zoo.data")
    dm = ImageFolderDataModule(data_aligned_root, batch_size=3, **SMALL)
    assert dm.layout == "aligned"
    assert "layout 'aligned'" in caplog.text and str(data_aligned_root) in caplog.text
    assert dm.root == data_aligned_root.resolve()
    for split, n in (("train", 3), ("val", 2), ("test", 2), ("predict", 2)):
        batch = _batch(dm, split)
        assert set(batch) == {"A", "B", "A_path", "B_path"}
        assert batch["A"].shape == (n, 3, 32, 32) == batch["B"].shape
        assert batch["A"].dtype == torch.float32
        assert isinstance(batch["A_path"], list) and isinstance(batch["A_path"][0], str)
        # A is the red left half, B the blue right half; the green odd column belongs to neither
        assert torch.allclose(batch["A"], _in_range(RED).expand(n, 3, 32, 32), atol=0.02)
        assert torch.allclose(batch["B"], _in_range(BLUE).expand(n, 3, 32, 32), atol=0.02)
        assert float(batch["A"].min()) >= -1 and float(batch["A"].max()) <= 1
    assert len(dm.train_dataset) == 4 and len(dm.val_dataset) == 2 and len(dm.test_dataset) == 2


def test_direction_btoa_swaps(data_aligned_root, tmp_path):
    dm = ImageFolderDataModule(data_aligned_root, direction="BtoA", batch_size=2, **SMALL)
    batch = _batch(dm)
    assert torch.allclose(batch["A"], _in_range(BLUE).expand(2, 3, 32, 32), atol=0.02)
    assert torch.allclose(batch["B"], _in_range(RED).expand(2, 3, 32, 32), atol=0.02)

    root = tmp_path / "ab"
    for i in range(3):
        _solid(root / "A" / f"{i}.png", RED)
        _solid(root / "B" / f"{i}.png", BLUE)
    dm = ImageFolderDataModule(root, direction="BtoA", **SMALL)
    dm.setup()
    s = dm.train_dataset[0]
    assert Path(s["A_path"]).parent.name == "B" and Path(s["B_path"]).parent.name == "A"
    assert torch.allclose(s["A"], _in_range(BLUE).expand(3, 32, 32), atol=0.02)
    with pytest.raises(DataError, match="direction='sideways'.*AtoB, BtoA"):
        ImageFolderDataModule(root, direction="sideways")


def test_pixel_range_zero_one(data_aligned_root):
    dm = ImageFolderDataModule(data_aligned_root, pixel_range=(0.0, 1.0), **SMALL)
    batch = _batch(dm)
    assert float(batch["A"].min()) >= 0 and abs(float(batch["A"][0, 0].mean()) - 1.0) < 0.02


def test_paired_transforms_identical_and_random(tmp_path):
    root = tmp_path / "same"
    img = _noise_img(0, (50, 40))
    both = np.concatenate([np.asarray(img), np.asarray(img)], axis=1)
    (root / "train").mkdir(parents=True)
    Image.fromarray(both).save(root / "train" / "x.png")
    dm = ImageFolderDataModule(root, layout="aligned", load_size=36, crop_size=24, num_workers=0)
    dm.setup()
    seen = set()
    for seed in range(12):
        L.seed_everything(seed, verbose=False)
        s = dm.train_dataset[0]
        assert torch.equal(s["A"], s["B"]), f"A and B transformed differently for seed {seed}"
        seen.add(hashlib.sha1(s["A"].numpy().tobytes()).hexdigest())
        L.seed_everything(seed, verbose=False)
        assert torch.equal(dm.train_dataset[0]["A"], s["A"])  # reproducible
    assert len(seen) > 3, "random crops/flips should differ across seeds"


def test_paired_transform_crops_the_same_place(tmp_path):
    # A and B differ (B = A's colours inverted), so equality would be trivial; check B == 255 - A
    root = tmp_path / "inv"
    a = np.asarray(_noise_img(3, (30, 30)))
    for name, arr in (("A", a), ("B", 255 - a)):
        (root / name).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(arr).save(root / name / f"{i}.png")
    dm = ImageFolderDataModule(root, preprocess="crop", crop_size=16, num_workers=0, pixel_range=(0, 1))
    dm.setup()
    for seed in range(6):
        L.seed_everything(seed, verbose=False)
        s = dm.train_dataset[0]
        assert torch.allclose(s["A"] + s["B"], torch.ones_like(s["A"]), atol=1e-6)


@pytest.mark.parametrize(
    "preprocess,size,expected",
    [("crop", (20, 12), (32, 32)), ("resize", (50, 30), (32, 32)), ("none", (59, 41), (40, 60))],
)
def test_preprocess_modes(tmp_path, preprocess, size, expected):
    root = tmp_path / "p"
    for seed, side in enumerate("AB"):
        (root / side).mkdir(parents=True)
        _noise_img(seed, size).save(root / side / "0.png")
    dm = ImageFolderDataModule(root, preprocess=preprocess, **SMALL)
    dm.setup()
    s = dm.train_dataset[0]
    assert tuple(s["A"].shape[1:]) == expected == tuple(s["B"].shape[1:])


def test_invalid_sizes_and_options(tmp_path):
    with pytest.raises(DataError, match="load_size.*crop_size"):
        ImageFolderDataModule(tmp_path, load_size=20, crop_size=32)
    with pytest.raises(DataError, match="preprocess='zoom'"):
        ImageFolderDataModule(tmp_path, preprocess="zoom")
    with pytest.raises(DataError, match="layout='grid'"):
        ImageFolderDataModule(tmp_path, layout="grid")
    with pytest.raises(DataError, match="unknown built-in dataset|builtin='nope'"):
        ImageFolderDataModule(None, builtin="nope")


# ------------------------------------------------------------------------------------------ paired


def test_paired_ab_stems_across_extensions_and_holdout(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="zoo.data")
    root = tmp_path / "ab"
    for i in range(12):
        ext_a, ext_b = (".png", ".jpg") if i % 2 else (".jpg", ".png")
        _solid(root / "A" / f"img{i:02d}{ext_a}", RED)
        _solid(root / "B" / f"img{i:02d}{ext_b}", BLUE)
    dm = ImageFolderDataModule(root, **SMALL)
    dm.setup()
    assert dm.layout == "paired" and "layout 'paired'" in caplog.text
    tr = [dm.train_dataset[i] for i in range(len(dm.train_dataset))]
    va = [dm.val_dataset[i] for i in range(len(dm.val_dataset))]
    assert len(va) == 1 and len(tr) == 11  # 10% held out, at least 1
    for s in tr + va:
        assert _stem(s["A_path"]) == _stem(s["B_path"])
        assert Path(s["A_path"]).parent.name == "A" and Path(s["B_path"]).parent.name == "B"
    assert not {s["A_path"] for s in tr} & {s["A_path"] for s in va}
    # deterministic for a seed; another seed holds out another image (12 choices)
    other = {ImageFolderDataModule(root, seed=k, **SMALL) for k in range(1, 6)}
    held = set()
    for d in other:
        d.setup()
        held.add(d.val_dataset.a_files[0])
    assert len(held) > 1
    again = ImageFolderDataModule(root, **SMALL)
    again.setup()
    assert again.val_dataset.a_files == dm.val_dataset.a_files
    with pytest.raises(DataError, match="no test split"):
        dm.test_dataloader()
    assert len(dm.predict_dataloader().dataset) == 1  # predict falls back to val


def test_paired_mismatch_lists_stems(tmp_path):
    root = tmp_path / "mm"
    for i in range(3):
        _solid(root / "A" / f"both{i}.png", RED)
        _solid(root / "B" / f"both{i}.jpg", BLUE)
    _solid(root / "A" / "only_a1.png", RED)
    for i in range(7):
        _solid(root / "B" / f"only_b{i}.png", BLUE)
    with pytest.raises(DataError) as info:
        ImageFolderDataModule(root, **SMALL).setup()
    msg = str(info.value)
    assert "only_a1" in msg and "only_b0" in msg and "only_b4" in msg
    assert "only_b6" not in msg and "2 more" in msg  # at most 5 listed per side
    assert re.search(r"1 in \S*/A have no match", msg) and re.search(r"7 in \S*/B have no match", msg)
    assert re.search(r"4 files in \S*/A, 10 in \S*/B", msg)
    assert "same file stem" in msg  # says what to do


def test_duplicate_stems_rejected(tmp_path):
    root = tmp_path / "dup"
    _solid(root / "A" / "a.png", RED)
    _solid(root / "A" / "a.jpg", RED)
    _solid(root / "B" / "a.png", BLUE)
    with pytest.raises(DataError, match="two images with the stem 'a'"):
        ImageFolderDataModule(root, **SMALL).setup()


def test_train_a_b_paired_autodetect(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="zoo.data")
    root = tmp_path / "tab"
    for split, n in (("train", 3), ("test", 2)):
        for i in range(n):
            _solid(root / f"{split}A" / f"{i}.png", RED)
            _solid(root / f"{split}B" / f"{i}.jpg", BLUE)
    with pytest.warns(UserWarning, match="pass layout='unpaired' if the two domains are unrelated"):
        dm = ImageFolderDataModule(root, **SMALL)
        dm.setup()
    assert dm.layout == "paired"
    assert "has a counterpart" in caplog.text and "layout 'paired'" in caplog.text
    assert len(dm.train_dataset) == 3 and len(dm.test_dataset) == 2
    assert len(dm.val_dataset) == 2  # no valA/valB: the test split validates
    s = dm.train_dataset[2]
    assert _stem(s["A_path"]) == _stem(s["B_path"]) == "2"
    # forcing unpaired on the same folder is allowed
    dm = ImageFolderDataModule(root, layout="unpaired", **SMALL)
    dm.setup()
    assert dm.layout == "unpaired"


# ---------------------------------------------------------------------------------------- unpaired


@pytest.fixture
def data_unpaired_root(tmp_path) -> Path:
    root = tmp_path / "horse2zebra"
    for i in range(3):
        _solid(root / "trainA" / f"h{i}.png", (i * 10, 0, 0))
    for i in range(5):
        _solid(root / "trainB" / f"z{i}.png", (0, 0, i * 10))
    for i in range(2):
        _solid(root / "testA" / f"th{i}.png", RED)
        _solid(root / "testB" / f"tz{i}.png", BLUE)
    return root


def test_unpaired_autodetect_length_and_random_b(data_unpaired_root, caplog):
    caplog.set_level(logging.INFO, logger="zoo.data")
    dm = ImageFolderDataModule(data_unpaired_root, **SMALL)
    dm.setup()
    assert dm.layout == "unpaired"
    assert "no counterpart" in caplog.text and "layout 'unpaired'" in caplog.text
    ds = dm.train_dataset
    assert len(ds) == 5  # max(len(A), len(B))

    def draw(seed):
        L.seed_everything(seed, verbose=False)
        return [ds[i % len(ds)] for i in range(25)]

    first, again, other = draw(0), draw(0), draw(1)
    b_paths = [s["B_path"] for s in first]
    assert b_paths == [s["B_path"] for s in again]  # reproducible under seed_everything
    assert b_paths != [s["B_path"] for s in other]
    assert len(set(b_paths)) > 2
    assert [_stem(p) for p in b_paths] != [f"z{i % 5}" for i in range(25)]  # not B[i % len(B)]
    assert [_stem(s["A_path"]) for s in first[:5]] == ["h0", "h1", "h2", "h0", "h1"]  # A[i % len(A)]
    # validation (testA/testB here): deterministic B[i % len(B)]
    assert [_stem(dm.val_dataset[i]["B_path"]) for i in range(2)] == ["tz0", "tz1"]


def test_unpaired_holdout_without_val_or_test(tmp_path):
    root = tmp_path / "u"
    for i in range(10):
        _solid(root / "trainA" / f"a{i}.png", RED)
    for i in range(20):
        _solid(root / "trainB" / f"b{i}.png", BLUE)
    dm = ImageFolderDataModule(root, **SMALL)
    dm.setup()
    assert dm.layout == "unpaired"
    assert len(dm.val_dataset.a_files) == 1 and len(dm.val_dataset.b_files) == 2
    assert len(dm.train_dataset) == 18
    assert not set(dm.val_dataset.b_files) & set(dm.train_dataset.b_files)


def test_unpaired_batches_with_a_worker(data_unpaired_root):
    dm = ImageFolderDataModule(data_unpaired_root, load_size=36, crop_size=32, batch_size=5, num_workers=1)
    assert dm.persistent_workers is True
    batch = _batch(dm)
    assert batch["A"].shape == (5, 3, 32, 32) and len(batch["B_path"]) == 5


# --------------------------------------------------------------------------- detection and errors


def test_ambiguous_and_unrecognised_roots(tmp_path):
    amb = tmp_path / "amb"
    _aligned(amb / "train" / "0.png")
    _solid(amb / "A" / "0.png", RED)
    with pytest.raises(DataError, match="ambiguous.*train/.*A/ B/"):
        ImageFolderDataModule(amb).layout
    # forcing a layout resolves the ambiguity
    assert ImageFolderDataModule(amb, layout="aligned", **SMALL).layout == "aligned"

    empty = tmp_path / "empty_root"
    empty.mkdir()
    with pytest.raises(DataError, match="looked for train/.*A/ \\+ B/.*trainA/ \\+ trainB/"):
        ImageFolderDataModule(empty).layout
    with pytest.raises(DataError, match="does_not_exist.*does not exist"):
        ImageFolderDataModule(tmp_path / "does_not_exist").layout
    half = tmp_path / "half"
    _solid(half / "trainA" / "0.png", RED)
    with pytest.raises(DataError, match="no trainB/"):
        ImageFolderDataModule(half).layout


def test_missing_and_empty_split_folders(tmp_path):
    root = tmp_path / "r"
    (root / "train").mkdir(parents=True)
    (root / "train" / "readme.txt").write_text("no images here")
    with pytest.raises(DataError, match=r"r/train contains no images \(looked for .png"):
        ImageFolderDataModule(root, **SMALL).setup()
    other = tmp_path / "o"
    _solid(other / "A" / "0.png", RED)
    with pytest.raises(DataError, match=r"o/train does not exist"):
        ImageFolderDataModule(other, layout="aligned", **SMALL).setup()
    with pytest.raises(DataError, match="o/B does not exist"):
        ImageFolderDataModule(other, layout="paired", **SMALL).setup()


def test_discovery_ignores_non_images_hidden_and_loops(tmp_path):
    train = tmp_path / "train"
    _aligned(train / "b.png")
    _aligned(train / "A.JPG")
    _aligned(train / "sub" / "deep.png")
    (train / "notes.txt").write_text("x")
    (train / "model.ckpt").write_bytes(b"\0" * 10)
    (train / ".hidden.png").write_text("not an image")
    (train / ".thumbs").mkdir()
    (train / ".thumbs" / "t.png").write_text("not an image")
    os.symlink(train, train / "loop", target_is_directory=True)  # a symlink loop
    files = list_images(train)
    assert [p.relative_to(train).as_posix() for p in files] == ["A.JPG", "b.png", "sub/deep.png"]
    dm = ImageFolderDataModule(tmp_path, **SMALL)
    dm.setup()
    assert len(dm.train_dataset) + len(dm.val_dataset) == 3
    for i in range(len(dm.train_dataset)):
        dm.train_dataset[i]  # nothing unreadable was picked up


# -------------------------------------------------------------------------------------- bad files


@pytest.fixture
def data_root_with_bad_file(tmp_path) -> Path:
    root = tmp_path / "bad"
    _aligned(root / "train" / "0_good.png")
    (root / "train" / "1_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    _aligned(root / "train" / "2_good.png", left=GREEN)
    _aligned(root / "val" / "0.png")
    return root


def test_corrupt_file_raises_naming_it(data_root_with_bad_file):
    dm = ImageFolderDataModule(data_root_with_bad_file, **SMALL)
    dm.setup()
    assert dm.train_dataset[0]["A"].shape == (3, 32, 32)
    with pytest.raises(ImageReadError, match="1_broken.png.*skip_bad"):
        dm.train_dataset[1]


def test_skip_bad_warns_once_and_returns_next(data_root_with_bad_file):
    dm = ImageFolderDataModule(data_root_with_bad_file, skip_bad=True, **SMALL)
    dm.setup()
    with pytest.warns(UserWarning, match="1_broken.png"):
        s = dm.train_dataset[1]
    assert Path(s["A_path"]).name == "2_good.png"  # the next readable item
    assert torch.allclose(s["A"], _in_range(GREEN).expand(3, 32, 32), atol=0.02)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert Path(dm.train_dataset[1]["A_path"]).name == "2_good.png"
    assert not [w for w in caught if "1_broken" in str(w.message)]  # once per file


def test_skip_bad_all_bad_is_data_error(tmp_path):
    root = tmp_path / "allbad"
    (root / "train").mkdir(parents=True)
    for i in range(3):
        (root / "train" / f"{i}.png").write_bytes(b"")
    _aligned(root / "val" / "0.png")
    Image.new("RGB", (1, 5)).save(root / "train" / "narrow.png")  # too narrow to split
    dm = ImageFolderDataModule(root, skip_bad=True, **SMALL)
    dm.setup()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(DataError, match="all 4 items"):
            dm.train_dataset[0]
    strict = ImageFolderDataModule(root, **SMALL)
    strict.setup()
    assert Path(strict.train_dataset.files[3]).name == "narrow.png"
    with pytest.raises(ImageReadError, match="narrow.png.*too narrow"):
        strict.train_dataset[3]


# ---------------------------------------------------------------------------------------- built-in


@pytest.fixture(scope="session")
def data_builtin(tmp_path_factory) -> tuple[Path, float]:
    cache = tmp_path_factory.mktemp("zoo_cache")
    t0 = time.perf_counter()
    folder = ensure_builtin("edges2photo", seed=0, cache_dir=cache)
    return folder, time.perf_counter() - t0


def test_builtin_layout_time_and_manifest(data_builtin):
    folder, seconds = data_builtin
    assert seconds < 20, f"built-in generation took {seconds:.1f} s"
    assert folder.name == "edges2photo-v1-s256-n48x8-seed0"
    assert folder.parent.name == "datasets"
    manifest = json.loads((folder / "manifest.json").read_text())
    train = sorted(p.name for p in (folder / "train").iterdir())
    val = sorted(p.name for p in (folder / "val").iterdir())
    assert train == [f"{i:04d}.png" for i in range(48)] and val == [f"{i:04d}.png" for i in range(8)]
    for rel, entry in manifest["files"].items():
        assert hashlib.sha256((folder / rel).read_bytes()).hexdigest() == entry["sha256"]
        w, h = entry["photo_size"]
        x0, y0, x1, y1 = entry["box"]
        assert x1 - x0 == y1 - y0 > 0 and 0 <= y0 < y1 <= h
        split_col = int(w * 0.75)
        if rel.startswith("train/"):
            assert 0 <= x0 and x1 <= split_col, rel  # left 75% only
        else:
            assert split_col <= x0 and x1 <= w, rel  # right 25% only
    assert len({e["photo"] for e in manifest["files"].values()}) >= 6
    img = Image.open(folder / "train" / "0000.png")
    assert img.size == (512, 256)
    a = np.asarray(img.convert("RGB"))[:, :256]
    assert set(np.unique(a)) <= {0, 255} and (a == 0).mean() > 0.01  # black edges on white


def test_builtin_unpaired_domains_share_no_image(tmp_path):
    """`edges2photo-unpaired`: A = edge drawings, B = photos, each from its own crop; validation crops from
    the held-out columns; deterministic; served by the DataModule in the unpaired layout."""
    kw = dict(size=64, n_train=6, n_val=3)
    folder = ensure_builtin("edges2photo-unpaired", seed=0, cache_dir=tmp_path / "c1", **kw)
    again = ensure_builtin("edges2photo-unpaired", seed=0, cache_dir=tmp_path / "c2", **kw)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["layout"] == "unpaired" and manifest == json.loads((again / "manifest.json").read_text())
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == ["trainA", "trainB", "valA", "valB"]
    files = manifest["files"]
    for split, count in (("train", 6), ("val", 3)):
        for i in range(count):
            a, b = files[f"{split}A/{i:04d}.png"], files[f"{split}B/{i:04d}.png"]
            assert (a["photo"], a["box"]) != (b["photo"], b["box"])  # A is not drawn from B's crop
            for entry in (a, b):
                split_col = entry["train_columns"][1]
                assert (entry["box"][2] <= split_col) if split == "train" else (entry["box"][0] >= split_col)
    drawing = np.asarray(Image.open(folder / "trainA" / "0000.png").convert("RGB"))
    photo = np.asarray(Image.open(folder / "trainB" / "0000.png").convert("RGB"))
    assert set(np.unique(drawing)) <= {0, 255} and len(np.unique(photo)) > 50
    dm = ImageFolderDataModule(builtin="edges2photo-unpaired", num_workers=0, load_size=36, crop_size=32)
    dm._builtin_size = lambda: 64  # a 64-px set (the default is 256 px): faster
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ZOO_CACHE", str(tmp_path / "c1"))
        dm.setup()
    assert dm.layout == "unpaired" and len(dm.train_dataset) == 48 and len(dm.val_dataset) == 8
    assert dm.dataset_name == "zoo-builtin-edges2photo-unpaired"


def test_builtin_cached_not_rebuilt(data_builtin):
    folder, _ = data_builtin
    before = (folder / "manifest.json").stat().st_mtime_ns
    t0 = time.perf_counter()
    again = ensure_builtin("edges2photo", seed=0, cache_dir=folder.parent.parent)
    assert again == folder and time.perf_counter() - t0 < 1.0
    assert (folder / "manifest.json").stat().st_mtime_ns == before


def test_builtin_deterministic_and_seeded(tmp_path):
    kw = dict(size=48, n_train=4, n_val=2)
    one = ensure_builtin(seed=3, cache_dir=tmp_path / "c1", **kw)
    two = ensure_builtin(seed=3, cache_dir=tmp_path / "c2", **kw)
    other = ensure_builtin(seed=4, cache_dir=tmp_path / "c1", **kw)
    rels = [f"train/{i:04d}.png" for i in range(4)] + ["val/0000.png", "val/0001.png"]
    for rel in rels:
        assert (one / rel).read_bytes() == (two / rel).read_bytes()
    assert (one / "manifest.json").read_bytes() == (two / "manifest.json").read_bytes()
    assert all((one / rel).read_bytes() != (other / rel).read_bytes() for rel in rels)
    with pytest.raises(DataError, match="unknown built-in dataset 'edges2cats'.*edges2photo"):
        ensure_builtin("edges2cats", cache_dir=tmp_path)


def test_builtin_concurrent_builds_and_broken_leftover(tmp_path):
    kw = dict(size=32, n_train=3, n_val=1, cache_dir=tmp_path)
    target = builtin_dir("sketch2photo", **kw)
    (target / "train").mkdir(parents=True)  # an incomplete leftover (no manifest)
    results, errors = [], []

    def build():
        try:
            results.append(ensure_builtin(**kw))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=build) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and results == [target] * 3
    assert (target / "manifest.json").is_file() and len(list((target / "train").iterdir())) == 3
    assert sorted(p.name for p in (tmp_path / "datasets").iterdir()) == [target.name]  # no temp left


def test_datamodule_without_root_uses_builtin(data_builtin, monkeypatch, caplog):
    folder, _ = data_builtin
    monkeypatch.setenv("ZOO_CACHE", str(folder.parent.parent))
    caplog.set_level(logging.INFO, logger="zoo.data")
    dm = ImageFolderDataModule(batch_size=4, builtin="edges2photo", **SMALL)
    batch = _batch(dm)
    assert dm.layout == "aligned" and dm.root == folder
    assert "no root given: using the built-in 'edges2photo' set" in caplog.text
    assert batch["A"].shape == (4, 3, 32, 32) and batch["B"].shape == (4, 3, 32, 32)
    assert len(dm.train_dataset) == 48 and len(dm.val_dataset) == 8
    assert dm.test_dataset is None
    # A is an edge map: (nearly) black and white; B is a photo with colour
    assert float((batch["A"].abs() > 0.9).float().mean()) > 0.5
    assert float((batch["B"][:, 0] - batch["B"][:, 2]).abs().mean()) > 0.01


def test_signature_works_with_jsonargparse():
    from jsonargparse import ArgumentParser

    parser = ArgumentParser()
    parser.add_class_arguments(ImageFolderDataModule, "data")
    cfg = parser.parse_args(["--data.root", "/x", "--data.pixel_range", "[0, 1]", "--data.crop_size", "64"])
    assert cfg.data.pixel_range == (0.0, 1.0) and cfg.data.crop_size == 64
    assert cfg.data.direction == "AtoB" and cfg.data.pin_memory is None


def test_colour_sketch_is_blurred_layout_with_black_edges():
    from zoo.data.builtin import canny_edges, colour_sketch
    from skimage.data import astronaut

    photo = astronaut()[100:356, 100:356]
    sketch = colour_sketch(photo)
    edges = canny_edges(photo)[..., 0] == 0
    assert sketch.shape == photo.shape and sketch.dtype == np.uint8
    assert edges.any() and (sketch[edges] == 0).all()  # every edge pixel drawn black
    off = ~edges
    # elsewhere: the colour layout survives (close on average), the detail does not (much smoother)
    assert np.abs(sketch[off].astype(float) - photo[off]).mean() < 40
    detail = lambda im: np.abs(np.diff(im.astype(float), axis=1)).mean()  # noqa: E731
    assert detail(np.where(edges[..., None], photo, sketch)) < 0.5 * detail(photo)


def test_epoch_sampler_is_a_function_of_seed_and_epoch():
    from zoo.data.sampling import EpochSampler

    def run(global_seed: int, data_seed: int, epoch: int) -> list:
        torch.manual_seed(global_seed)
        sampler = EpochSampler(20, seed=data_seed)
        torch.rand(100)  # the global stream's position must not matter
        sampler.set_epoch(epoch)
        return list(sampler)

    first = run(0, 0, 0)
    assert first == run(0, 0, 0)
    assert sorted(i for i, _ in first) == list(range(20))  # a permutation: every item once
    assert first != run(0, 0, 1) and first != run(1, 0, 0) and first != run(0, 1, 0)
    assert [i for i, _ in EpochSampler(5, shuffle=False)] == [0, 1, 2, 3, 4]


def test_epoch_sampler_splits_across_ranks_with_the_same_item_seeds():
    from torch.utils.data import DistributedSampler

    from zoo.data.sampling import EpochSampler

    def ranks(world: int, n: int = 7) -> list[list]:
        out = []
        for rank in range(world):
            torch.manual_seed(0)
            sampler = EpochSampler(n, num_replicas=world, rank=rank)
            sampler.set_epoch(3)
            out.append(list(sampler))
        return out

    single = ranks(1)[0]
    r0, r1 = ranks(2)
    assert len(r0) == len(r1) == 4  # 7 items padded to 8, as DistributedSampler pads
    assert set(r0 + r1) == set(single)  # every (item, seed) of the single-process epoch, nothing else
    assert isinstance(EpochSampler(3), DistributedSampler)  # so Lightning calls set_epoch and does not wrap it


def test_training_items_are_reproducible_from_their_seed(tmp_path):
    noise = np.random.default_rng(0).integers(0, 256, (40, 80, 3), dtype=np.uint8)
    (tmp_path / "train").mkdir()
    Image.fromarray(noise).save(tmp_path / "train" / "0.png")
    dm = ImageFolderDataModule(root=tmp_path, layout="aligned", **SMALL)
    dm.setup("fit")
    a = dm.train_dataset[(0, 123)]["A"]
    assert torch.equal(a, dm.train_dataset[(0, 123)]["A"])
    assert any(not torch.equal(a, dm.train_dataset[(0, s)]["A"]) for s in range(1, 6))  # other crops/flips
