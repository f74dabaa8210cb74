"""zoo.imageio: reading every image mode as RGB, batch round trips, padding, ranges."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from zoo.errors import DataError, ImageReadError, ZooError
from zoo.imageio import (
    IMAGE_EXTENSIONS,
    InputKind,
    crop_to,
    from_batch,
    from_range,
    pad_to_multiple,
    read_image,
    to_batch,
    to_range,
)


def _noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _rgb(img: Image.Image) -> np.ndarray:
    assert img.mode == "RGB"
    return np.asarray(img).astype(int)


# ------------------------------------------------------------------------------------ read_image


def test_extensions_are_lowercase_and_complete():
    for ext in (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".gif"):
        assert ext in IMAGE_EXTENSIONS


def test_read_rgb_png_exact(tmp_path):
    a = _noise(5, 7)
    Image.fromarray(a).save(tmp_path / "x.PNG")
    assert np.array_equal(np.asarray(read_image(tmp_path / "x.PNG")), a)


def test_read_grayscale_and_1bit(tmp_path):
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(gray, mode="L").save(tmp_path / "g.png")
    out = _rgb(read_image(tmp_path / "g.png"))
    assert out.shape == (3, 4, 3)
    for c in range(3):
        assert np.array_equal(out[..., c], gray)

    bits = np.zeros((4, 4), dtype=bool)
    bits[0, :] = True
    Image.fromarray(bits).convert("1").save(tmp_path / "b.png")
    out = _rgb(read_image(tmp_path / "b.png"))
    assert (out[0] == 255).all() and (out[1:] == 0).all()


def test_read_palette_and_palette_transparency(tmp_path):
    p = Image.new("P", (4, 2))
    p.putpalette([10, 20, 30, 200, 100, 50] + [0] * (254 * 3))
    p.putpixel((0, 0), 1)
    p.save(tmp_path / "p.png")
    out = _rgb(read_image(tmp_path / "p.png"))
    assert tuple(out[0, 0]) == (200, 100, 50) and tuple(out[1, 1]) == (10, 20, 30)

    p.save(tmp_path / "pt.png", transparency=0)  # index 0 transparent
    out = _rgb(read_image(tmp_path / "pt.png"))
    assert tuple(out[1, 1]) == (255, 255, 255), "transparent palette pixel must become white"
    assert tuple(out[0, 0]) == (200, 100, 50)


def test_read_rgba_alpha_over_white(tmp_path):
    a = np.zeros((2, 2, 4), dtype=np.uint8)
    a[0, 0] = (0, 0, 0, 0)  # fully transparent black
    a[0, 1] = (0, 0, 0, 255)  # opaque black
    a[1, 0] = (0, 0, 0, 128)  # half-transparent black
    a[1, 1] = (255, 0, 0, 255)
    Image.fromarray(a, mode="RGBA").save(tmp_path / "a.png")
    out = _rgb(read_image(tmp_path / "a.png"))
    assert tuple(out[0, 0]) == (255, 255, 255)
    assert tuple(out[0, 1]) == (0, 0, 0)
    assert all(abs(v - 127) <= 1 for v in out[1, 0])
    assert tuple(out[1, 1]) == (255, 0, 0)


def test_read_la(tmp_path):
    la = np.zeros((1, 2, 2), dtype=np.uint8)
    la[0, 0] = (50, 0)
    la[0, 1] = (50, 255)
    Image.fromarray(la, mode="LA").save(tmp_path / "la.png")
    out = _rgb(read_image(tmp_path / "la.png"))
    assert tuple(out[0, 0]) == (255, 255, 255) and tuple(out[0, 1]) == (50, 50, 50)


def test_read_16bit_gray_scaling(tmp_path):
    a = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)
    img = Image.fromarray(a)
    assert img.mode.startswith("I;16")
    img.save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")  # really stored as 16-bit
    out = _rgb(read_image(tmp_path / "g16.png"))
    assert list(out[0, :, 0]) == [0, 1, 128, 255]
    assert (out[..., 0] == out[..., 2]).all()


def test_read_float_tiff(tmp_path):
    a = np.array([[0.0, 0.5, 1.0]], dtype=np.float32)
    Image.fromarray(a, mode="F").save(tmp_path / "f.tif")
    out = _rgb(read_image(tmp_path / "f.tif"))
    assert list(out[0, :, 1]) == [0, 128, 255]
    b = np.array([[-5.0, 100.0, 300.0]], dtype=np.float32)  # not in [0, 1]: clipped to 0..255
    Image.fromarray(b, mode="F").save(tmp_path / "f2.tif")
    assert list(_rgb(read_image(tmp_path / "f2.tif"))[0, :, 0]) == [0, 100, 255]


def test_read_cmyk_jpeg(tmp_path):
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(tmp_path / "c.jpg", quality=95)
    img = read_image(tmp_path / "c.jpg")
    r, g, b = _rgb(img)[8, 8]
    assert r > 230 and g < 30 and b < 30, (r, g, b)


def test_read_exif_rotated_jpeg(tmp_path):
    # stored 40 wide x 20 high, quadrants TL red, TR green, BL blue, BR white
    a = np.zeros((20, 40, 3), dtype=np.uint8)
    a[:10, :20] = (255, 0, 0)
    a[:10, 20:] = (0, 255, 0)
    a[10:, :20] = (0, 0, 255)
    a[10:, 20:] = (255, 255, 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.fromarray(a).save(tmp_path / "r.jpg", exif=exif.tobytes(), quality=95)
    img = read_image(tmp_path / "r.jpg")
    assert img.size == (20, 40)  # (W, H) swapped
    expected = np.rot90(a, k=-1)  # clockwise
    got = _rgb(img)
    # compare the centre of each quadrant (JPEG blurs the borders)
    for y in (10, 30):
        for x in (5, 15):
            assert np.abs(got[y, x] - expected[y, x].astype(int)).max() < 40, (y, x)
    assert tuple(expected[10, 15]) == (255, 0, 0)  # the red corner moved to the top right


def test_read_animated_gif_first_frame(tmp_path):
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=50)
    assert Image.open(tmp_path / "anim.gif").n_frames == 3
    out = _rgb(read_image(tmp_path / "anim.gif"))
    assert (out == (255, 0, 0)).all()


def test_read_multipage_tiff_first_page(tmp_path):
    pages = [Image.new("RGB", (4, 4), c) for c in ((9, 99, 199), (200, 0, 0))]
    pages[0].save(tmp_path / "m.tiff", save_all=True, append_images=pages[1:])
    assert tuple(_rgb(read_image(tmp_path / "m.tiff"))[0, 0]) == (9, 99, 199)


@pytest.mark.parametrize("fmt,ext", [("PNG", "png"), ("JPEG", "jpg")])
def test_truncated_file_raises_naming_it(tmp_path, fmt, ext):
    path = tmp_path / f"half_{ext}_file.{ext}"
    Image.fromarray(_noise(64, 64)).save(path, format=fmt)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match=f"half_{ext}_file") as info:
        read_image(path)
    assert "skip_bad" in str(info.value)  # says what to do


def test_zero_byte_and_text_file_raise(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageReadError, match="empty.png.*empty"):
        read_image(tmp_path / "empty.png")
    (tmp_path / "notes.png").write_text("this is not an image\n")
    with pytest.raises(ImageReadError, match="notes.png"):
        read_image(tmp_path / "notes.png")
    with pytest.raises(ImageReadError, match="does not exist"):
        read_image(tmp_path / "missing.png")
    assert issubclass(ImageReadError, ZooError)


@pytest.mark.parametrize("side", [11, 20])  # 121 px: warning zone; 400 px: error zone
def test_decompression_bomb_is_an_error(tmp_path, monkeypatch, side):
    Image.fromarray(_noise(side, side)).save(tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(ImageReadError, match="bomb.png"):
        read_image(tmp_path / "bomb.png")


# --------------------------------------------------------------------------- to_batch / from_batch


def test_roundtrip_pil_exact():
    a = _noise(5, 9)
    x, kind = to_batch(Image.fromarray(a))
    assert x.dtype == torch.float32 and x.shape == (1, 3, 5, 9)
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    out = from_batch(x, kind)
    assert isinstance(out, Image.Image) and out.mode == "RGB"
    assert np.array_equal(np.asarray(out), a)


def test_roundtrip_pil_gray_and_batch_list():
    g = Image.fromarray(np.full((3, 4), 77, np.uint8), mode="L")
    x, kind = to_batch(g)
    assert x.shape == (1, 3, 3, 4)
    outs = from_batch(torch.cat([x, 1 - x]), kind)
    assert isinstance(outs, list) and len(outs) == 2
    assert (np.asarray(outs[0]) == 77).all() and (np.asarray(outs[1]) == 178).all()


def test_roundtrip_path(tmp_path):
    a = _noise(6, 3)
    Image.fromarray(a).save(tmp_path / "p.png")
    for p in (tmp_path / "p.png", str(tmp_path / "p.png")):
        x, kind = to_batch(p)
        out = from_batch(x, kind)
        assert isinstance(out, Image.Image) and np.array_equal(np.asarray(out), a)


def test_roundtrip_uint8_hwc_exact_and_rounding():
    a = _noise(4, 6)
    x, kind = to_batch(a)
    assert x.shape == (1, 3, 4, 6)
    out = from_batch(x, kind)
    assert out.dtype == np.uint8 and out.shape == a.shape and np.array_equal(out, a)
    # rounded, not truncated: 0.999 * 255 = 254.7 -> 255 (truncation would give 254)
    y = torch.full((1, 3, 1, 1), 254.7 / 255)
    assert from_batch(y, kind)[0, 0, 0] == 255


def test_roundtrip_hw_gray_array():
    a = np.arange(20, dtype=np.uint8).reshape(4, 5) * 12
    x, kind = to_batch(a)
    assert x.shape == (1, 3, 4, 5)
    out = from_batch(x, kind)
    assert out.shape == (4, 5, 3)
    for c in range(3):
        assert np.array_equal(out[..., c], a)


def test_roundtrip_uint16_and_float_arrays():
    a16 = np.random.default_rng(1).integers(0, 65536, (3, 4, 3), dtype=np.uint16)
    x, kind = to_batch(a16)
    assert abs(float(x.max()) - a16.max() / 65535) < 1e-6
    out = from_batch(x, kind)
    assert out.dtype == np.uint16 and np.array_equal(out, a16)

    af = np.random.default_rng(2).random((3, 4, 3)).astype(np.float32)
    x, kind = to_batch(af)
    out = from_batch(x, kind)
    assert out.dtype == np.float32 and np.allclose(out, af, atol=1e-6)


def test_batched_array_and_rgba_array():
    a = np.stack([_noise(3, 3, s) for s in range(2)])
    x, kind = to_batch(a)
    assert x.shape == (2, 3, 3, 3)
    assert np.array_equal(from_batch(x, kind), a)

    rgba = np.zeros((1, 2, 4), dtype=np.uint8)
    rgba[0, 1] = (10, 20, 30, 255)
    x, kind = to_batch(rgba)
    out = from_batch(x, kind)
    assert tuple(out[0, 0]) == (255, 255, 255) and tuple(out[0, 1]) == (10, 20, 30)


def test_roundtrip_tensors():
    chw = torch.rand(3, 5, 6, dtype=torch.float64)
    x, kind = to_batch(chw)
    assert x.shape == (1, 3, 5, 6) and x.dtype == torch.float32
    out = from_batch(x, kind)
    assert out.shape == (3, 5, 6) and out.dtype == torch.float64 and out.device == chw.device
    assert torch.allclose(out, chw, atol=1e-6)

    bchw = torch.rand(2, 3, 4, 4)
    x, kind = to_batch(bchw)
    out = from_batch(x, kind)
    assert out.shape == (2, 3, 4, 4) and torch.equal(out, bchw)

    gray = torch.rand(1, 1, 4, 4)
    x, _ = to_batch(gray)
    assert x.shape == (1, 3, 4, 4) and torch.equal(x[:, 0], x[:, 2])
    assert isinstance(kind, InputKind) and kind.kind == "tensor"


def test_from_batch_clamps():
    _, kind = to_batch(torch.rand(3, 2, 2))
    out = from_batch(torch.full((1, 3, 2, 2), 1.7), kind)
    assert float(out.max()) == 1.0


@pytest.mark.parametrize(
    "bad,match",
    [
        (torch.rand(1, 1, 3, 4, 4), "CHW or BCHW"),
        (np.zeros((4, 4, 2), np.uint8), "2 channels"),
        ("/definitely/not/a/file.png", "not a file"),
        ([1, 2, 3], "unsupported input type list"),
        (torch.rand(3, 4, 4) * 2 - 1, r"must be in \[0, 1\]"),
        (np.zeros((2, 2, 2, 2, 3), np.uint8), "not an image"),
    ],
)
def test_to_batch_rejects_bad_inputs(bad, match):
    with pytest.raises(DataError, match=match):
        to_batch(bad)


# ---------------------------------------------------------------------------- padding and ranges


@pytest.mark.parametrize(
    "h,w,m",
    [(5, 7, 4), (5, 7, 256), (1, 1, 4), (1, 1, 256), (1, 7, 256), (1, 7, 4), (8, 8, 4), (3, 300, 256)],
)
@pytest.mark.parametrize("mode", ["reflect", "replicate", "constant"])
def test_pad_to_multiple_and_crop_back(h, w, m, mode):
    x = torch.rand(2, 3, h, w)
    y, size = pad_to_multiple(x, m, mode)
    assert size == (h, w)
    assert y.shape[-2] % m == 0 and y.shape[-1] % m == 0
    assert y.shape[-2] - h < m and y.shape[-1] - w < m  # the smallest multiple
    assert torch.equal(crop_to(y, size), x)


def test_pad_reflect_values():
    x = torch.tensor([[[[1.0, 2.0, 3.0]]]])
    y, _ = pad_to_multiple(x, 4)
    assert y[0, 0, 0].tolist() == [1.0, 2.0, 3.0, 2.0]  # reflect, not replicate
    assert y.shape == (1, 1, 4, 4)
    assert all(row.tolist() == [1.0, 2.0, 3.0, 2.0] for row in y[0, 0])  # H of 1: replicated
    y, _ = pad_to_multiple(torch.arange(3.0).reshape(1, 1, 3, 1), 8, mode="reflect")
    # repeated reflection: 0 1 2 | 1 0 | 1 2 1  (never replicate where reflecting is possible)
    assert y[0, 0, :, 0].tolist() == [0.0, 1.0, 2.0, 1.0, 0.0, 1.0, 2.0, 1.0]
    z, _ = pad_to_multiple(torch.tensor([[[[5.0]]]]), 4)  # 1x1: replicate is the only option
    assert (z == 5.0).all()
    with pytest.raises(DataError):
        pad_to_multiple(x, 4, mode="wrap")


def test_ranges():
    x = torch.tensor([0.0, 0.25, 1.0])
    assert torch.allclose(to_range(x, (-1, 1)), torch.tensor([-1.0, -0.5, 1.0]))
    assert torch.allclose(from_range(to_range(x, (-1, 1)), (-1, 1)), x)
    assert torch.equal(from_range(torch.tensor([-3.0, 5.0]), (-1, 1)), torch.tensor([0.0, 1.0]))
    assert torch.allclose(to_range(x, (0, 255)), x * 255)
    with pytest.raises(DataError):
        to_range(x, (1, -1))
