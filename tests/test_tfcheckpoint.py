"""zoo.tfcheckpoint.read_tf_checkpoint, TensorFlow's checkpoint formats without TensorFlow: every variable of
checkpoints written by real TensorFlow (V1 as magenta's 2016 release, V2, a TF2 object checkpoint; partitioned,
int and float64 variables) equals what TensorFlow's own reader returned when the fixtures were made
(tests/data/tf/expected.json, see tests/data/tf/README.md); path forms; unsupported dtypes, compressed blocks,
truncated, bit-flipped and missing files are CheckpointErrors; the cin converter turns the fixture into a model."""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from zoo.errors import CheckpointError
from zoo.methods.cin import CIN, from_official, official_name
from zoo.tfcheckpoint import _crc32c, _crc32c_small, _ordered_signed, _unmask, is_tf_checkpoint, read_tf_checkpoint

DATA = Path(__file__).parent / "data" / "tf"
EXPECTED = json.loads((DATA / "expected.json").read_text())
FIXTURES = sorted(EXPECTED["fixtures"])  # cin_v1.ckpt, cin_v2.ckpt, object_v2
V1, V2 = DATA / "cin_v1.ckpt", DATA / "cin_v2.ckpt"


def fingerprint(array: np.ndarray) -> dict:
    """As make_fixtures.py wrote it from TensorFlow's reader."""
    array = np.ascontiguousarray(array)
    return {"shape": list(array.shape), "dtype": str(array.dtype),
            "sha256": hashlib.sha256(array.tobytes()).hexdigest(), "sum": float(np.sum(array, dtype=np.float64))}


def copy_v2(tmp_path: Path, name: str = "cin_v2.ckpt") -> Path:
    for f in DATA.glob(name + ".*"):
        shutil.copy(f, tmp_path / f.name)
    return tmp_path / name


# ------------------------------------------------------------------------------------ against TensorFlow
@pytest.mark.parametrize("fixture", FIXTURES)
def test_every_variable_matches_tensorflow(fixture):
    expected = EXPECTED["fixtures"][fixture]
    got = read_tf_checkpoint(DATA / fixture)
    assert sorted(got) == sorted(expected["variables"])  # TF2's object-graph string is skipped, nothing else
    assert set(expected["others"]) <= {"_CHECKPOINTABLE_OBJECT_GRAPH"}
    mismatched = [name for name, fp in expected["variables"].items() if fingerprint(got[name]) != fp]
    assert not mismatched


def test_fixture_covers_the_formats_it_claims():
    """The V1/V2 fixtures hold magenta's full variable set, scalar and negative ints, float64 and a variable
    TensorFlow saved as 3 slices: the cases the comparison above is meant to exercise."""
    v1 = read_tf_checkpoint(V1)
    names = {official_name(k) for k in CIN(num_styles=3, width=2, vgg_weights=None).transformer.state_dict()}
    assert names <= set(v1)
    assert v1["global_step"].shape == () and v1["global_step"].dtype == np.int64 and v1["global_step"] == 40000
    assert v1["extra/int32_counts"].tolist() == [3, -7, 0, 2**31 - 1, -2**31]
    assert v1["extra/int64_ids"].tolist() == [1, -1, 2**40, -(2**62)]
    assert v1["extra/float64_table"].dtype == np.float64
    assert v1["extra/partitioned"].shape == (7, 4)
    assert V1.read_bytes().count(b"extra/partitioned") >= 4  # the table of contents + 3 slice records
    assert b"\x00extra/partitioned\x00\x01" in (DATA / "cin_v2.ckpt.index").read_bytes()  # V2 slice-entry keys
    v2 = read_tf_checkpoint(V2)
    assert all(np.array_equal(v1[k], v2[k]) and v1[k].dtype == v2[k].dtype for k in v1)


def test_path_forms(tmp_path):
    prefix = copy_v2(tmp_path)
    reference = read_tf_checkpoint(prefix)
    for form in (prefix.with_name(prefix.name + ".index"), prefix.with_name(prefix.name + ".data-00000-of-00001"),
                 str(prefix)):
        got = read_tf_checkpoint(form)
        assert sorted(got) == sorted(reference) and all(np.array_equal(got[k], reference[k]) for k in got)
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "cin_v2.ckpt"\nall_model_checkpoint_paths: "x"\n')
    assert sorted(read_tf_checkpoint(tmp_path)) == sorted(reference)
    assert is_tf_checkpoint(tmp_path) and is_tf_checkpoint(prefix) and is_tf_checkpoint(V1)
    torch.save({"w": torch.ones(3)}, tmp_path / "model.pth")
    assert not any(is_tf_checkpoint(p) for p in (tmp_path / "model.pth", tmp_path / "absent.ckpt", tmp_path / "cin"))


# ------------------------------------------------------------------------------------------------ errors
@pytest.mark.parametrize("fixture", ["float16_v1.ckpt", "float16_v2.ckpt"])
def test_unsupported_dtype_names_dtype_and_variable(fixture):
    assert EXPECTED["float16"][fixture]["others"] == {"half/weights": "float16"}
    with pytest.raises(CheckpointError, match=r"'half/weights' has dtype float16.*float32, float64, int32 and int64"):
        read_tf_checkpoint(DATA / fixture)


def test_missing_files(tmp_path):
    with pytest.raises(CheckpointError, match="no TensorFlow checkpoint at .*nothing.ckpt"):
        read_tf_checkpoint(tmp_path / "nothing.ckpt")
    with pytest.raises(CheckpointError, match="folder without a TensorFlow 'checkpoint' file"):
        read_tf_checkpoint(tmp_path)
    prefix = copy_v2(tmp_path)
    prefix.with_name(prefix.name + ".data-00000-of-00001").unlink()
    with pytest.raises(CheckpointError, match=r"cannot read its data file .*cin_v2.ckpt.data-00000-of-00001"):
        read_tf_checkpoint(prefix)


@pytest.mark.parametrize("content", [b"", b"not a checkpoint", b"\x00" * 4096, "torch"])
def test_not_a_checkpoint(tmp_path, content):
    path = tmp_path / "model.ckpt"
    if content == "torch":
        torch.save({"w": torch.ones(3)}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match="model.ckpt.*(too short|magic number).*download it again"):
        read_tf_checkpoint(path)


@pytest.mark.parametrize("keep", [0, 10, 47, 48, 20000, -49, -48, -1])
def test_truncated_v1(tmp_path, keep):
    data = V1.read_bytes()
    path = tmp_path / "cut.ckpt"
    path.write_bytes(data[:keep] if keep >= 0 else data[:len(data) + keep])
    with pytest.raises(CheckpointError, match="cut.ckpt"):
        read_tf_checkpoint(path)


def test_truncated_v2_data(tmp_path):
    prefix = copy_v2(tmp_path)
    data_file = prefix.with_name(prefix.name + ".data-00000-of-00001")
    data_file.write_bytes(data_file.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match=r"is at bytes \[\d+, \d+\) of its data file, which has \d+ bytes"):
        read_tf_checkpoint(prefix)


@pytest.mark.parametrize("name", ["cin_v1.ckpt", "cin_v2.ckpt.index", "cin_v2.ckpt.data-00000-of-00001"])
def test_flipped_bytes_never_pass_silently(tmp_path, name):
    """A flipped byte anywhere gives a CheckpointError, or the very same arrays where nothing reads it: the
    footer's padding and the empty meta-index block, both in a table's last 128 bytes (a V2 data file has
    none: every byte belongs to a CRC-checked tensor). Never a raw exception, never wrong weights."""
    prefix = copy_v2(tmp_path)
    target = tmp_path / name
    if name == "cin_v1.ckpt":
        shutil.copy(V1, target)
    path = target if name == "cin_v1.ckpt" else prefix
    reference = read_tf_checkpoint(path)
    original = target.read_bytes()
    positions = sorted({*np.linspace(0, len(original) - 1, 40).astype(int).tolist(), *range(len(original) - 60,
                                                                                            len(original), 6)})
    unread = []
    for pos in positions:
        flipped = bytearray(original)
        flipped[pos] ^= 0x5A
        target.write_bytes(bytes(flipped))
        try:
            got = read_tf_checkpoint(path)
        except CheckpointError as e:
            assert "download it again" in str(e) or "dtype" in str(e)
            continue
        assert sorted(got) == sorted(reference) and all(np.array_equal(got[k], reference[k]) for k in got), pos
        unread.append(pos)
    limit = len(original) if name.endswith("00001") else len(original) - 128
    assert all(pos >= limit for pos in unread), unread


def test_compressed_block_is_named(tmp_path):
    """TensorFlow's table format allows snappy blocks (type byte 1); its savers never write them. The reader
    names the compression instead of decoding garbage."""
    data = bytearray(V1.read_bytes())
    footer = bytes(data[-48:])
    pos = 0
    for _ in range(2):  # skip the meta-index handle
        while footer[pos] & 0x80:
            pos += 1
        pos += 1
    values = []
    for _ in range(2):  # the index block handle: offset, size
        value, shift = 0, 0
        while True:
            b = footer[pos]
            pos += 1
            value |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        values.append(value)
    offset, size = values
    data[offset + size] = 1  # the block's type byte: snappy
    crc = _crc32c(bytes(data[offset:offset + size + 1]))
    rot = ((crc >> 15) | (crc << 17)) & 0xFFFFFFFF
    data[offset + size + 1:offset + size + 5] = struct.pack("<I", (rot + 0xA282EAD8) & 0xFFFFFFFF)
    path = tmp_path / "snappy.ckpt"
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="snappy-compressed; zoo's TensorFlow reader reads uncompressed"):
        read_tf_checkpoint(path)


# ----------------------------------------------------------------------------------- format primitives
def test_crc32c():
    assert _crc32c_small(b"123456789") == 0xE3069283  # the CRC-32C check value (RFC 3720 B.4)
    assert _crc32c(b"") == 0
    rng = np.random.default_rng(0)
    for n in (2047, 2048, 2049, 4096, 70001):  # the numpy lanes path against the byte loop
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        assert _crc32c(data) == _crc32c_small(data)
    crc = 0x12345678
    rot = ((crc >> 15) | (crc << 17)) & 0xFFFFFFFF
    assert _unmask((rot + 0xA282EAD8) & 0xFFFFFFFF) == crc


@pytest.mark.parametrize("encoded, value", [(b"\xf0\x42\x42\x42", 0x424242), (b"\x38\x00", -0x800), (b"\x80", 0),
                                            (b"\x7f", -1), (b"\x83", 3)])
def test_ordered_code_signed_numbers(encoded, value):
    """The examples of tensorflow/core/lib/strings/ordered_code.cc (slice keys of partitioned V2 tensors)."""
    assert _ordered_signed(encoded + b"tail", 0, "key") == (value, len(encoded))


# ------------------------------------------------------------------------------------- the cin converter
def test_cin_converter_on_tensorflow_written_checkpoints():
    """Both fixtures (every variable of magenta's transformer at width 2, 3 styles, plus bookkeeping that the
    converter skips) convert to the same CIN whose weights are the TF arrays, HWIO kernels as OIHW."""
    models = []
    for path in (V1, V2):
        variables = read_tf_checkpoint(path)
        model = from_official(variables, vgg_weights=None).eval()
        assert (model.num_styles, model.hparams.width) == (EXPECTED["cin"]["num_styles"], EXPECTED["cin"]["width"])
        for key, value in model.transformer.state_dict().items():
            array = variables[official_name(key)]
            assert torch.equal(value, torch.from_numpy(array.transpose(3, 2, 0, 1) if array.ndim == 4 else array))
        models.append(model)
    x = torch.rand(2, 3, 20, 12)
    out = models[0].stylize(x, style=1)
    assert out.shape == x.shape and 0.0 <= out.min() and out.max() <= 1.0 and out.std() > 0
    assert not torch.equal(out, models[0].stylize(x, style=2))  # the styles' γ, β differ
