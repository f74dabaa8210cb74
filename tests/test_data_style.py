"""zoo.data.style: the content/style DataModule and the built-in content ('photos') and style ('patterns') sets."""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from zoo.data.builtin import PATTERN_STYLES, ensure_content_builtin, ensure_style_builtin
from zoo.data.style import ContentStyleDataModule, ContentTransform, read_style, resize_shorter
from zoo.errors import DataError, ImageReadError, ZooError

SMALL = dict(content_size=24, crop_size=16, num_workers=0, batch_size=3)


def _noise(path: Path, size=(40, 30), seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    a = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(a).save(path)
    return path


def _solid(path: Path, color, size=(20, 20)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


@pytest.fixture
def content_root(tmp_path) -> Path:
    """10 noise images of different shapes, two in a sub-folder (found recursively)."""
    root = tmp_path / "coco"
    for i in range(8):
        _noise(root / f"{i}.png", size=(40 + 4 * i, 30), seed=i)
    for i in range(2):
        _noise(root / "more" / f"{i}.jpg", size=(30, 50), seed=10 + i)
    return root


@pytest.fixture
def style_dir(tmp_path) -> Path:
    """Three styles of one colour each, of different shapes."""
    folder = tmp_path / "wikiart"
    _solid(folder / "b_blue.png", (0, 0, 255), (30, 20))
    _solid(folder / "a_red.png", (255, 0, 0), (24, 40))
    _solid(folder / "c" / "green.png", (0, 255, 0), (50, 50))
    return folder


def _tensor(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(img.convert("RGB"))).permute(2, 0, 1).float() / 255


def _batch(dm: ContentStyleDataModule, split: str = "train") -> dict:
    dm.setup("fit")
    return next(iter(getattr(dm, f"{split}_dataloader")()))


def _epoch(dm: ContentStyleDataModule, epoch: int) -> list[dict]:
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(epoch)
    return list(loader)


# ------------------------------------------------------------------------------------ batches


def test_batch_keys_shapes_ranges_and_names(content_root, style_dir):
    dm = ContentStyleDataModule(content_root, style_dir, style_size=20, **SMALL)
    b = _batch(dm)
    assert set(b) == {"content", "style", "style_index", "content_path", "style_path"}
    assert b["content"].shape == (3, 3, 16, 16) and b["content"].dtype == torch.float32
    # three styles of three shapes, no style_crop_size: all centre-cropped to style_size squares
    assert b["style"].shape == (3, 3, 20, 20)
    assert b["style_index"].dtype == torch.long and b["style_index"].shape == (3,)
    assert 0 <= float(b["content"].min()) and float(b["content"].max()) <= 1 and float(b["content"].std()) > 0.1
    assert len(b["content_path"]) == len(b["style_path"]) == 3
    for i, path in zip(b["style_index"].tolist(), b["style_path"]):
        assert Path(path) == dm.style_paths[i]  # style_index names the image in style_path
    assert dm.num_styles == 3
    assert dm.style_paths == [style_dir / "a_red.png", style_dir / "b_blue.png", style_dir / "c" / "green.png"]
    assert dm.style_names == ["a_red", "b_blue", "c/green"]
    assert dm.dataset_name == "coco+wikiart" and "/" not in dm.dataset_name
    # 10 images, no train/ folder: 10% (1) held out for validation, disjoint from training
    assert len(dm.train_dataset) == 9 and len(dm.val_dataset) == 1
    assert not set(dm.train_dataset.content_files) & set(dm.val_dataset.content_files)


def test_shorter_side_resize_keeps_aspect_before_crop(tmp_path):
    # 80x40: left quarter red, middle half green, right quarter blue. Keeping the aspect (-> 40x20),
    # the centred 20x20 crop is all green; squashing to 20x20 would show red and blue too.
    a = np.zeros((40, 80, 3), np.uint8)
    a[:, :20], a[:, 20:60], a[:, 60:] = (255, 0, 0), (0, 255, 0), (0, 0, 255)
    img = Image.fromarray(a)
    assert resize_shorter(img, 20).size == (40, 20) and resize_shorter(img.rotate(90, expand=True), 20).size == (20, 40)
    out = ContentTransform(20, 20, random_crop=False, flip=False)(img)
    assert out.shape == (3, 20, 20)
    green = torch.tensor([0.0, 1.0, 0.0]).view(3, 1, 1)
    assert torch.allclose(out[:, :, 2:-2], green.expand(3, 20, 16), atol=0.02)
    # and through the DataModule: a random crop of a 40x20 image is 20x20 and inside the picture
    _noise(tmp_path / "c" / "x.png", (80, 40))
    _solid(tmp_path / "s.png", (9, 9, 9))
    dm = ContentStyleDataModule(tmp_path / "c", tmp_path / "s.png", content_size=20, crop_size=20, num_workers=0)
    dm.setup()
    resized = _tensor(resize_shorter(Image.open(tmp_path / "c" / "x.png"), 20))
    crop = dm.train_dataset[(0, 5)]["content"]
    assert any(torch.allclose(crop, resized[:, :, x : x + 20]) for x in range(21))


def test_training_crops_and_styles_are_a_function_of_seed_and_epoch(content_root, style_dir):
    def run(epoch: int, seed: int = 0) -> list[dict]:
        torch.manual_seed(0)  # what seed_everything does; the sampler's base seed
        dm = ContentStyleDataModule(content_root, style_dir, style_crop_size=12, seed=seed, flip=True, **SMALL)
        dm.setup()
        return _epoch(dm, epoch)

    first, again, other = run(0), run(0), run(1)
    assert len(first) == 3  # 9 training images in batches of 3
    for a, b in zip(first, again):
        assert torch.equal(a["content"], b["content"]) and torch.equal(a["style"], b["style"])
        assert torch.equal(a["style_index"], b["style_index"]) and a["content_path"] == b["content_path"]
    assert any(not torch.equal(a["content"], b["content"]) for a, b in zip(first, other))
    assert any(not torch.equal(a["content"], b["content"]) for a, b in zip(first, run(0, seed=1)))
    drawn = torch.cat([b["style_index"] for b in first + other]).tolist()
    assert len(set(drawn)) >= 2  # styles are drawn at random, not one per content image
    # the same item and seed always give the same sample; other seeds other crops
    dm = ContentStyleDataModule(content_root, style_dir, **SMALL)
    dm.setup()
    one = dm.train_dataset[(0, 123)]
    assert torch.equal(one["content"], dm.train_dataset[(0, 123)]["content"])
    assert any(not torch.equal(one["content"], dm.train_dataset[(0, s)]["content"]) for s in range(1, 6))


def test_center_crop_mode_and_validation_pairing(content_root, style_dir):
    dm = ContentStyleDataModule(content_root, style_dir, crop="center", **SMALL)
    dm.setup()
    # crop="center" without flip: training items do not depend on the item seed
    assert torch.equal(dm.train_dataset[(2, 1)]["content"], dm.train_dataset[(2, 99)]["content"])
    big = content_root.parent / "many"
    for i in range(7):
        _noise(big / "train" / f"{i}.png", (30, 30), seed=i)
        _noise(big / "val" / f"{i}.png", (36, 30), seed=20 + i)
    dm = ContentStyleDataModule(big, style_dir, **SMALL)
    batches = list(dm.val_dataloader())
    again = list(ContentStyleDataModule(big, style_dir, **SMALL).val_dataloader())
    assert len(dm.train_dataset) == 7 and len(dm.val_dataset) == 7  # train/ + val/ used as given
    idx = torch.cat([b["style_index"] for b in batches]).tolist()
    assert idx == [i % 3 for i in range(7)]  # content i with style i % num_styles
    for a, b in zip(batches, again):
        assert torch.equal(a["content"], b["content"]) and torch.equal(a["style"], b["style"])
    # validation crops are centred: the middle of the shorter-side-resized image
    path = Path(batches[0]["content_path"][0])
    resized = _tensor(resize_shorter(Image.open(path), 24))  # 36x30 -> 29x24 (28.8 rounded)
    assert resized.shape == (3, 24, 29)
    want = resized[:, 4:20, 6:22]  # centred: (24 - 16) // 2 rows, (29 - 16) // 2 columns
    assert torch.allclose(batches[0]["content"][0], want)


def test_single_style_file_every_batch_carries_it(content_root, tmp_path):
    style = _noise(tmp_path / "candy.jpg", (48, 32), seed=5)
    dm = ContentStyleDataModule(content_root, style, style_size=16, **SMALL)
    want = _tensor(resize_shorter(Image.open(style).convert("RGB"), 16))
    assert want.shape == (3, 16, 24)  # aspect kept, no crop for one style
    for split, n in (("train", 3), ("val", 1)):
        b = _batch(dm, split)
        assert b["style"].shape == (n, 3, 16, 24) and b["style_index"].tolist() == [0] * n
        assert all(torch.equal(s, want) for s in b["style"])
    assert dm.num_styles == 1 and dm.style_names == ["candy"] and dm.style_paths == [style]
    assert dm.dataset_name == "coco+candy.jpg"


def test_style_crop_random_in_training_centred_in_validation(content_root, tmp_path):
    style = _noise(tmp_path / "noise.png", (40, 30), seed=7)
    dm = ContentStyleDataModule(content_root, style, style_crop_size=10, **SMALL)
    dm.setup()
    full = _tensor(Image.open(style))
    assert torch.equal(dm.val_dataset[0]["style"], full[:, 10:20, 15:25])  # the centre
    crops = [dm.train_dataset[(0, s)]["style"] for s in range(6)]
    places = {(y, x) for c in crops for y in range(21) for x in range(31) if torch.equal(c, full[:, y : y + 10, x : x + 10])}
    assert len(places) >= 3  # random places, each a real 10x10 window of the style image
    assert all(c.shape == (3, 10, 10) for c in crops) and torch.equal(crops[0], dm.train_dataset[(0, 0)]["style"])


def test_style_folder_max_styles_and_common_square(content_root, style_dir):
    # no style_size, no style_crop_size, different shapes: the centre square of the smallest side (20)
    dm = ContentStyleDataModule(content_root, style_dir, **SMALL)
    dm.setup()
    for j, path in enumerate(dm.style_paths):
        img = Image.open(path).convert("RGB")
        w, h = img.size
        box = ((w - 20) // 2, (h - 20) // 2, (w - 20) // 2 + 20, (h - 20) // 2 + 20)
        want = _tensor(img.crop(box))
        item = dm.val_dataset[j]  # validation item j has style j
        assert item["style_index"] == j and torch.equal(item["style"], want)
    # max_styles keeps the first N in sorted order
    dm = ContentStyleDataModule(content_root, style_dir, max_styles=2, **SMALL)
    assert dm.num_styles == 2 and dm.style_names == ["a_red", "b_blue"]
    b = _batch(dm)
    assert set(b["style_index"].tolist()) <= {0, 1} and b["style"].shape[-2:] == (20, 20)  # 24x40 and 30x20


# ------------------------------------------------------------------------------ image modes, bad files


def test_gray_rgba_palette_and_16bit_images_load_as_rgb(tmp_path):
    content, styles = tmp_path / "content", tmp_path / "styles"
    for folder in (content, styles):
        folder.mkdir()
        Image.fromarray(np.full((20, 20), 128, np.uint8), "L").save(folder / "gray.png")
        Image.new("RGBA", (20, 20), (255, 0, 0, 0)).save(folder / "rgba.png")  # transparent: over white
        pal = Image.new("P", (20, 20), 1)
        pal.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
        pal.save(folder / "palette.png")
        Image.fromarray(np.full((20, 20), 65535, np.uint16)).save(folder / "deep.png")  # 16-bit white
    want = {"gray": (128, 128, 128), "rgba": (255, 255, 255), "palette": (0, 0, 255), "deep": (255, 255, 255)}
    dm = ContentStyleDataModule(content, styles, content_size=16, crop_size=16, num_workers=0, batch_size=4)
    dm.setup()
    assert dm.style_names == ["deep", "gray", "palette", "rgba"]
    items = [dm.train_dataset[(i, 0)] for i in range(len(dm.train_dataset))]
    items += [dm.val_dataset[i] for i in range(len(dm.val_dataset))]
    assert len(items) == 4
    for item in items:
        for key in ("content", "style"):
            colour = torch.tensor(want[Path(item[f"{key}_path"]).stem], dtype=torch.float32).view(3, 1, 1) / 255
            assert item[key].shape[0] == 3 and torch.allclose(item[key], colour.expand_as(item[key]), atol=1e-6)
    batch = next(iter(dm.train_dataloader()))
    assert batch["content"].shape == (3, 3, 16, 16) and batch["style"].shape == (3, 3, 20, 20)


def test_corrupt_content_skipped_with_warning_only_with_skip_bad(tmp_path, style_dir):
    root = tmp_path / "content"
    _noise(root / "train" / "0_good.png", (20, 20))
    (root / "train" / "1_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    _solid(root / "train" / "2_green.png", (0, 255, 0))
    _noise(root / "val" / "0.png", (20, 20))
    strict = ContentStyleDataModule(root, style_dir, **SMALL)
    strict.setup()
    with pytest.raises(ImageReadError, match="1_broken.png"):
        strict.train_dataset[(1, 0)]
    dm = ContentStyleDataModule(root, style_dir, skip_bad=True, **SMALL)
    dm.setup()
    with pytest.warns(UserWarning, match="skipping unreadable image.*1_broken.png"):
        item = dm.train_dataset[(1, 0)]
    assert Path(item["content_path"]).name == "2_green.png"  # the next readable image
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(list(dm.train_dataloader())) == 1  # 3 items, one batch, the bad one not re-warned


def test_unreadable_style_is_an_error_even_with_skip_bad(content_root, tmp_path):
    styles = tmp_path / "styles"
    _solid(styles / "ok.png", (1, 2, 3))
    whole = _noise(tmp_path / "whole.png", (64, 64)).read_bytes()
    (styles / "truncated.png").write_bytes(whole[: len(whole) // 2])  # a valid header, half the pixels
    for skip_bad in (False, True):
        dm = ContentStyleDataModule(content_root, styles, skip_bad=skip_bad, **SMALL)
        with pytest.raises(ImageReadError, match=r"truncated.png.*truncated.*Style images are never skipped.*--data.style"):
            dm.setup()  # at setup, before any training step
    (styles / "truncated.png").write_bytes(b"")
    with pytest.raises(DataError, match="truncated.png.*empty"):
        ContentStyleDataModule(content_root, styles / "truncated.png", **SMALL).setup()


def test_data_errors_say_what_to_do(tmp_path, content_root, style_dir):
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("not an image")
    cases = [
        (dict(root=tmp_path / "nope", style=style_dir), r"content folder .*nope does not exist.*--data.root"),
        (dict(root=tmp_path / "empty", style=style_dir), r"empty contains no images.*--data.root"),
        (dict(root=content_root, style=tmp_path / "nope"), r"style .*nope does not exist.*--data.style"),
        (dict(root=content_root, style=tmp_path / "empty"), r"style folder .*empty contains no images.*--data.style"),
        (dict(root=content_root, style=tmp_path / "notes.txt"), r"notes.txt is neither a folder nor an image"),
        (dict(root=content_root, style=style_dir, val_split="holdout"), r"val_split 'holdout'.*train/"),
    ]
    for kwargs, message in cases:
        dm = ContentStyleDataModule(**kwargs, **SMALL)
        with pytest.raises(DataError, match=message):
            dm.setup()
    at_init = [
        (dict(content_size=16, crop_size=32), r"crop_size \(32\) is larger than content_size \(16\).*--data.crop_size"),
        (dict(style_size=16, style_crop_size=32), r"style_crop_size \(32\) is larger than style_size \(16\)"),
        (dict(batch_size=0), r"batch_size must be >= 1.*--data.batch_size"),
        (dict(max_styles=0), r"max_styles must be >= 1"),
        (dict(crop="middle"), r"crop='middle' is not valid: use one of random, center"),
        (dict(builtin="coco"), r"builtin='coco' is not valid.*photos"),
        (dict(builtin_style="monet"), r"builtin_style='monet' is not valid.*patterns"),
    ]
    for kwargs, message in at_init:
        with pytest.raises(DataError, match=message):
            ContentStyleDataModule(**{"num_workers": 0, **kwargs})
    assert issubclass(DataError, ZooError)


# -------------------------------------------------------------------------------------- built-in sets


def _sha(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*.png"))}


def test_builtin_sets_offline_reproducible_with_manifests(tmp_path):
    kw = dict(size=64, n_train=5, n_val=2)
    one = ensure_content_builtin("photos", seed=0, cache_dir=tmp_path / "c1", **kw)
    two = ensure_content_builtin("photos", seed=0, cache_dir=tmp_path / "c2", **kw)
    assert one.name == "photos-v1-s64-n5x2-seed0" and _sha(one) == _sha(two) and len(_sha(one)) == 7
    assert _sha(one) != _sha(ensure_content_builtin("photos", seed=1, cache_dir=tmp_path / "c1", **kw))
    manifest = json.loads((one / "manifest.json").read_text())
    assert {e["photo"] for e in manifest["files"].values()} == {"astronaut", "chelsea", "coffee", "rocket", "motorcycle_left"}
    for rel, entry in manifest["files"].items():
        assert entry["sha256"] == _sha(one)[rel]
        split_col = entry["train_columns"][1]
        assert (entry["box"][2] <= split_col) if rel.startswith("train/") else (entry["box"][0] >= split_col)
    assert Image.open(one / "train" / "0000.png").size == (64, 64)

    s1 = ensure_style_builtin("patterns", size=48, cache_dir=tmp_path / "c1")
    s2 = ensure_style_builtin("patterns", size=48, cache_dir=tmp_path / "c2")
    assert _sha(s1) == _sha(s2)
    names = sorted(_sha(s1))
    assert names == [f"{i:02d}-{n}.png" for i, n in enumerate(PATTERN_STYLES)] and names[0] == "00-mosaic.png"
    styles = json.loads((s1 / "manifest.json").read_text())["files"]
    assert all(styles[n]["source"].startswith("skimage.data.") for n in names)
    pixels = [np.asarray(Image.open(s1 / n).convert("RGB"), dtype=np.float64) for n in names]
    assert all(p.shape == (48, 48, 3) and p.std() > 10 for p in pixels)  # square, not flat
    means = np.array([p.mean(axis=(0, 1)) for p in pixels])
    gaps = np.abs(means[:, None] - means[None]).sum(-1) + np.abs(
        np.array([p.std() for p in pixels])[:, None] - np.array([p.std() for p in pixels])[None])
    assert (gaps + np.eye(len(names)) * 1e9).min() > 5  # every style looks different from every other
    with pytest.raises(DataError, match="unknown built-in style set 'monet'.*patterns"):
        ensure_style_builtin("monet", cache_dir=tmp_path)
    with pytest.raises(DataError, match="unknown built-in content set 'coco'.*photos"):
        ensure_content_builtin("coco", cache_dir=tmp_path)


def test_datamodule_without_folders_uses_builtin_sets(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path))
    dm = ContentStyleDataModule(max_styles=1, style_size=32, **SMALL)
    b = _batch(dm)
    assert dm.num_styles == 1 and dm.style_names == ["00-mosaic"]  # what a one-style method trains on
    assert b["content"].shape == (3, 3, 16, 16) and b["style"].shape == (3, 3, 32, 32)
    assert len(dm.train_dataset) == 48 and len(dm.val_dataset) == 8
    assert dm.dataset_name == "zoo-builtin-photos+zoo-builtin-patterns"
    assert sorted(p.name for p in (tmp_path / "datasets").iterdir()) == ["patterns-v1-s256", "photos-v1-s256-n48x8-seed0"]
    all_styles = ContentStyleDataModule(num_workers=0)
    assert all_styles.num_styles == len(PATTERN_STYLES) == 8
    assert all_styles.style_names[:2] == ["00-mosaic", "01-swirl"]


def test_signature_works_with_jsonargparse():
    from jsonargparse import ArgumentParser

    parser = ArgumentParser()
    parser.add_class_arguments(ContentStyleDataModule, "data")
    cfg = parser.parse_args(["--data.root", "/x", "--data.style", "/y/candy.jpg", "--data.style_size", "512",
                             "--data.crop", "center"])
    assert cfg.data.style_size == 512 and cfg.data.style_crop_size is None and cfg.data.crop == "center"
    assert cfg.data.builtin_style == "patterns" and cfg.data.batch_size == 4 and cfg.data.flip is False


def test_large_style_sets_read_headers_at_setup_and_fail_when_drawn(content_root, style_dir, monkeypatch):
    import zoo.data.style as style_module

    monkeypatch.setattr(style_module, "_VERIFY_LIMIT", 1)  # as if the folder held WikiArt
    dm = ContentStyleDataModule(content_root, style_dir, **SMALL)
    dm.setup()
    assert dm.val_dataset[2]["style"].shape == (3, 20, 20)  # sizes from the headers: the common square
    whole = _noise(style_dir / "whole.png", (64, 64)).read_bytes()
    (style_dir / "d_truncated.png").write_bytes(whole[: len(whole) // 2])
    (style_dir / "whole.png").unlink()
    dm = ContentStyleDataModule(content_root, style_dir, **SMALL)
    dm.setup()  # a valid header: found only when the style is drawn
    assert dm.style_names[3] == "d_truncated"
    with pytest.raises(ImageReadError, match="d_truncated.png.*Style images are never skipped"):
        dm.val_dataset[3]
    (style_dir / "e_garbage.png").write_bytes(b"not an image at all")
    with pytest.raises(ImageReadError, match="e_garbage.png.*not an image.*Style images are never skipped"):
        ContentStyleDataModule(content_root, style_dir, **SMALL).setup()


@pytest.mark.parametrize("limit", [256, 0])
def test_exif_rotated_style_counts_with_its_displayed_size(content_root, tmp_path, monkeypatch, limit):
    import zoo.data.style as style_module

    monkeypatch.setattr(style_module, "_VERIFY_LIMIT", limit)  # decoded (256) or header-only (0) sizes
    styles = tmp_path / "styles"
    _noise(styles / "a_portrait.png", (20, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 30x20, shown rotated by 90 degrees: 20x30
    Image.open(_noise(tmp_path / "tmp.png", (30, 20))).save(styles / "b_rotated.jpg", exif=exif, quality=95)
    dm = ContentStyleDataModule(content_root, styles, **SMALL)
    dm.setup()
    # both are 20 wide and 30 high as read_image returns them: one shape, so no common crop
    shapes = [dm.val_dataset.style_transform(read_style(p)).shape for p in dm.style_paths]
    assert shapes == [(3, 30, 20), (3, 30, 20)]
