"""A TensorFlow checkpoint reader that needs no TensorFlow: `read_tf_checkpoint(path)` gives
{variable name: numpy array}, as `tf.train.load_checkpoint(path)` with `reader.get_tensor(name)` would.

Why: magenta's `multistyle-pastiche-generator-{monet,varied}.ckpt` (cin's official weights, 2016) are
TensorFlow checkpoints, and installing TensorFlow (hundreds of MB) to read ~7 MB of floats once is out of
proportion. The formats are small and stable; everything below follows TensorFlow's own sources:

- The container is TensorFlow's LevelDB-style table (`tensorflow/core/lib/io/{table,block,format}.cc`):
  a 48-byte footer (metaindex and index block handles as varints, padding, magic 0xdb4775248b80fb57),
  an index block whose values are the handles of the data blocks, and blocks of prefix-compressed
  key/value entries followed by a restart array; each block is followed by a 5-byte trailer (compression
  type, masked CRC-32C of the block and type byte). TensorFlow writes checkpoints uncompressed (type 0);
  a snappy block (type 1) is reported, not decoded.
- V1 (`tf.compat.v1.train.Saver(write_version=V1)`, the 2016 default; one file,
  `tensorflow/core/util/tensor_slice_writer.cc`): the entry with the empty key is a `SavedTensorSlices`
  whose `meta` lists each tensor's name, shape, dtype and saved slices; every other entry is a
  `SavedTensorSlices` whose `data` holds one slice (`SavedSlice`: name, extent, a `TensorProto` with the
  values in `float_val` / `double_val` / `int_val` / `int64_val`, `saved_tensor_slice_util.h`).
  Partitioned variables are several slices; a plain variable is one full slice.
- V2 (`<prefix>.index` + `<prefix>.data-0000K-of-0000N`, `tensorflow/core/util/tensor_bundle/`): the index
  table maps "" to a `BundleHeaderProto` (shard count, endianness) and each name to a `BundleEntryProto`
  (dtype, shape, shard, offset, size, masked CRC-32C of the raw little-endian bytes in the data file).
  A partitioned tensor's entry lists its slices, whose entries are keyed by an OrderedCode of
  (0, name, rank, start/length per dimension) (`saved_tensor_slice_util.cc`, `lib/strings/ordered_code.cc`).

Only the protobuf fields those messages need are decoded (a minimal wire-format reader). Every block and
every V2 tensor is checked against its CRC-32C. Supported dtypes: float32, float64, int32, int64; any other
dtype, and any truncated, corrupt or inconsistent file, is a `zoo.CheckpointError` that says what is wrong
and what to do. TF2's object-graph bookkeeping string (`_CHECKPOINTABLE_OBJECT_GRAPH`) is skipped.
"""

from __future__ import annotations

import math
import os
import re
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from zoo.errors import CheckpointError

__all__ = ["read_tf_checkpoint", "is_tf_checkpoint"]


class _Malformed(Exception):
    """Internal: the file is not what its format promises; `read_tf_checkpoint` adds the path and advice."""


_CORRUPT_ADVICE = ("the file is truncated or corrupt, or not a TensorFlow checkpoint: download it again (compare its "
                   "sha256 with the published one) or re-save it with TensorFlow")

# ------------------------------------------------------------------------------------------------ CRC-32C
_CRC_POLY = 0x82F63B78  # Castagnoli, reflected (TensorFlow's crc32c, as LevelDB's)


def _crc_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ _CRC_POLY if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_LIST = _crc_table()
_CRC_NP = np.array(_CRC_LIST, dtype=np.uint32)
_CRC_LANE = 256  # bytes per lane of the vectorised CRC
_CRC_SHIFT: list[list[int]] = []  # 4 x 256 tables of "run the register over _CRC_LANE zero bytes", built lazily


def _crc32c_small(data: bytes) -> int:
    crc, table = 0xFFFFFFFF, _CRC_LIST
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _shift_tables() -> list[list[int]]:
    """The register after _CRC_LANE zero bytes is linear in the register before: tabulate it per byte."""
    if not _CRC_SHIFT:
        basis = np.array([1 << k for k in range(32)], dtype=np.uint32)
        for _ in range(_CRC_LANE):
            basis = _CRC_NP[basis & 0xFF] ^ (basis >> 8)
        cols = basis.tolist()
        for byte in range(4):
            table = []
            for v in range(256):
                acc = 0
                for bit in range(8):
                    if v >> bit & 1:
                        acc ^= cols[8 * byte + bit]
                table.append(acc)
            _CRC_SHIFT.append(table)
    return _CRC_SHIFT


def _crc32c(data: bytes) -> int:
    """CRC-32C of `data`. Long inputs run as many independent lanes in numpy (the CRC register is linear
    over GF(2): raw(0, A‖B) = shift_|B|(raw(0, A)) ⊕ raw(0, B)); the 0xFFFFFFFF initial register equals
    inverting the first four bytes, and leading zero bytes leave a zero register unchanged, so the data is
    zero-padded in front to whole lanes."""
    n = len(data)
    if n < 8 * _CRC_LANE:
        return _crc32c_small(data)
    lanes = -(-n // _CRC_LANE)
    pad = lanes * _CRC_LANE - n
    buf = np.zeros(lanes * _CRC_LANE, dtype=np.uint8)
    buf[pad:] = np.frombuffer(data, dtype=np.uint8)
    buf[pad:pad + 4] ^= 0xFF
    columns = np.ascontiguousarray(buf.reshape(lanes, _CRC_LANE).T)
    state = np.zeros(lanes, dtype=np.uint32)
    for column in columns:
        state = _CRC_NP[(state ^ column) & 0xFF] ^ (state >> 8)
    t0, t1, t2, t3 = _shift_tables()
    crc = 0
    for r in state.tolist():
        crc = t0[crc & 0xFF] ^ t1[(crc >> 8) & 0xFF] ^ t2[(crc >> 16) & 0xFF] ^ t3[crc >> 24] ^ r
    return crc ^ 0xFFFFFFFF


def _unmask(masked: int) -> int:
    """TensorFlow stores CRCs masked (`crc32c::Mask`: rotate right 15, add 0xa282ead8)."""
    rot = (masked - 0xA282EAD8) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


# --------------------------------------------------------------------------------- protobuf wire format
def _varint(buf: bytes, pos: int, what: str) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise _Malformed(f"{what}: a varint runs past the end of its data")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise _Malformed(f"{what}: a varint is longer than 10 bytes")


def _fields(buf: bytes, what: str) -> dict[int, list[tuple[int, int | bytes]]]:
    """One protobuf message: {field number: [(wire type, int for varints | raw bytes otherwise)]}."""
    out: dict[int, list[tuple[int, int | bytes]]] = {}
    pos, n = 0, len(buf)
    while pos < n:
        tag, pos = _varint(buf, pos, what)
        number, wire = tag >> 3, tag & 7
        value: int | bytes
        if wire == 0:
            value, pos = _varint(buf, pos, what)
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, pos = buf[pos:pos + size], pos + size
        elif wire == 2:
            size, pos = _varint(buf, pos, what)
            value, pos = buf[pos:pos + size], pos + size
        else:
            raise _Malformed(f"{what}: protobuf wire type {wire} (field {number}) is not valid here")
        if pos > n or number == 0:
            raise _Malformed(f"{what}: a protobuf field runs past the end of its message")
        out.setdefault(number, []).append((wire, value))
    return out


def _last(fields: dict, number: int, wire_type: int, what: str) -> Any:
    """The last value of field `number` (protobuf's last-one-wins) or None, checked to have `wire_type`."""
    values = fields.get(number)
    if not values:
        return None
    wire, value = values[-1]
    if wire != wire_type:
        kind = "an integer" if wire_type == 0 else "a message or string"
        raise _Malformed(f"{what}: field {number} should be {kind}")
    return value


def _int(fields: dict, number: int, what: str, default: int = 0) -> int:
    """A varint field as a signed 64-bit int."""
    value = _last(fields, number, 0, what)
    if value is None:
        return default
    return value - (1 << 64) if value >= 1 << 63 else value


def _bytes(fields: dict, number: int, what: str) -> bytes | None:
    return _last(fields, number, 2, what)


def _repeated(fields: dict, number: int, what: str) -> list[bytes]:
    values = fields.get(number, [])
    if any(wire != 2 for wire, _ in values):
        raise _Malformed(f"{what}: field {number} should hold messages")
    return [value for _, value in values]


def _text(raw: bytes | None, what: str) -> str:
    try:
        return (raw or b"").decode("utf-8")
    except UnicodeDecodeError:
        raise _Malformed(f"{what}: a tensor name is not UTF-8") from None


# ---------------------------------------------------------------------------------------------- the table
_FOOTER_SIZE = 48  # 2 block handles padded to 20 bytes each + 8 bytes of magic
_TABLE_MAGIC = 0xDB4775248B80FB57
_COMPRESSION = {1: "snappy", 2: "zlib", 3: "lz4", 4: "zstd"}


def _block(data: bytes, handle: bytes, what: str) -> bytes:
    """The contents of the block at `handle` (varint offset, varint size), checked against its trailer."""
    offset, pos = _varint(handle, 0, what)
    size, _ = _varint(handle, pos, what)
    end = offset + size
    if end + 5 > len(data) - _FOOTER_SIZE:
        raise _Malformed(f"{what}: a block at byte {offset} ({size} bytes) runs past the end of the file "
                         f"({len(data)} bytes)")
    kind = data[end]
    stored = struct.unpack_from("<I", data, end + 1)[0]
    if _unmask(stored) != _crc32c(data[offset:end + 1]):
        raise _Malformed(f"{what}: the block at byte {offset} fails its CRC-32C check")
    if kind != 0:
        name = _COMPRESSION.get(kind, f"unknown type {kind}")
        raise CheckpointError(
            f"{what}: the block at byte {offset} is {name}-compressed; zoo's TensorFlow reader reads uncompressed "
            f"tables only, which is what TensorFlow's savers write. Re-save the checkpoint with TensorFlow "
            f"(tf.compat.v1.train.Saver), or read it with TensorFlow (tf.train.load_checkpoint)."
        )
    return data[offset:end]


def _block_entries(block: bytes, what: str) -> Iterator[tuple[bytes, bytes]]:
    """The (key, value) entries of one block: keys share a prefix with the previous key (`block.cc`)."""
    if len(block) < 4:
        raise _Malformed(f"{what}: a block is shorter than its restart count")
    restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    limit = len(block) - 4 * (restarts + 1)
    if restarts == 0 or limit < 0:
        raise _Malformed(f"{what}: a block has a bad restart count ({restarts})")
    pos, key = 0, b""
    while pos < limit:
        shared, pos = _varint(block, pos, what)
        unshared, pos = _varint(block, pos, what)
        size, pos = _varint(block, pos, what)
        if shared > len(key) or pos + unshared + size > limit:
            raise _Malformed(f"{what}: a bad entry in a block")
        key = key[:shared] + block[pos:pos + unshared]
        pos += unshared
        yield key, block[pos:pos + size]
        pos += size


def _table(data: bytes, what: str) -> list[tuple[bytes, bytes]]:
    """Every (key, value) of a TensorFlow table file, in key order."""
    if len(data) < _FOOTER_SIZE:
        raise _Malformed(f"{what}: {len(data)} bytes is too short for a TensorFlow table (footer: {_FOOTER_SIZE})")
    footer = data[-_FOOTER_SIZE:]
    lo, hi = struct.unpack_from("<II", footer, _FOOTER_SIZE - 8)
    if (hi << 32 | lo) != _TABLE_MAGIC:
        raise _Malformed(f"{what}: no TensorFlow table magic number at the end of the file")
    _, pos = _varint(footer, 0, what)  # the metaindex offset (TensorFlow writes no meta blocks)
    _, pos = _varint(footer, pos, what)
    entries: list[tuple[bytes, bytes]] = []
    for _, handle in _block_entries(_block(data, footer[pos:], what), what):
        entries.extend(_block_entries(_block(data, handle, what), what))
    if any(a[0] >= b[0] for a, b in zip(entries, entries[1:])):
        raise _Malformed(f"{what}: the table's keys are not in increasing order")
    return entries


# ------------------------------------------------------------------------------------- tensors and shapes
_DTYPES = {1: np.dtype("<f4"), 2: np.dtype("<f8"), 3: np.dtype("<i4"), 9: np.dtype("<i8")}
_DTYPE_NAMES = {
    0: "invalid", 1: "float32", 2: "float64", 3: "int32", 4: "uint8", 5: "int16", 6: "int8", 7: "string",
    8: "complex64", 9: "int64", 10: "bool", 11: "qint8", 12: "quint8", 13: "qint32", 14: "bfloat16",
    15: "qint16", 16: "quint16", 17: "uint16", 18: "complex128", 19: "float16", 20: "resource", 21: "variant",
    22: "uint32", 23: "uint64",
}
#: TensorProto's value field of each supported dtype (`saved_tensor_slice_util.h`: float_val, double_val,
#: int_val, int64_val) and whether it holds varints.
_VALUE_FIELD = {1: (5, False), 2: (6, False), 3: (7, True), 9: (10, True)}
_SKIPPED = {"_CHECKPOINTABLE_OBJECT_GRAPH"}  # TF2's object graph: a serialized proto in a string tensor


def _base(code: int) -> int:
    return code - 100 if code > 100 else code  # reference dtypes (DT_FLOAT_REF = 101) store as their base


def _dtype(code: int, name: str, what: str) -> np.dtype:
    code = _base(code)
    if code not in _DTYPES:
        label = _DTYPE_NAMES.get(code, f"unknown dtype {code}")
        raise CheckpointError(
            f"{what}: variable {name!r} has dtype {label} (TensorFlow DataType {code}); zoo's TensorFlow reader "
            f"reads float32, float64, int32 and int64 only. Read this checkpoint with TensorFlow "
            f"(tf.train.load_checkpoint), or cast the variable and re-save it."
        )
    return _DTYPES[code]


def _shape(raw: bytes | None, name: str, what: str) -> tuple[int, ...]:
    """TensorShapeProto: repeated Dim dim = 2 {int64 size = 1}; unknown_rank = 3."""
    fields = _fields(raw or b"", what)
    if _int(fields, 3, what):
        raise _Malformed(f"{what}: {name!r} is stored with an unknown rank")
    dims = tuple(_int(_fields(d, what), 1, what) for d in _repeated(fields, 2, what))
    if any(d < 0 for d in dims):
        raise _Malformed(f"{what}: {name!r} has a negative dimension {list(dims)}")
    return dims


def _extent(raw: bytes, shape: tuple[int, ...], name: str, what: str) -> tuple[slice, ...]:
    """TensorSliceProto: repeated Extent extent = 1 {int64 start = 1; int64 length = 2 (absent: all)}."""
    extents = _repeated(_fields(raw, what), 1, what)
    if not extents:
        return tuple(slice(0, d) for d in shape)
    if len(extents) != len(shape):
        raise _Malformed(f"{what}: a slice of {name!r} has {len(extents)} dimensions, the tensor {len(shape)}")
    region = []
    for e, dim in zip(extents, shape):
        fields = _fields(e, what)
        # `oneof has_length`: no length is the whole dimension (TensorSlice(const TensorSliceProto&))
        start, length = (_int(fields, 1, what), _int(fields, 2, what)) if 2 in fields else (0, dim)
        if start < 0 or length < 0 or start + length > dim:
            raise _Malformed(f"{what}: a slice of {name!r} [{start}, {start + length}) falls outside its shape "
                             f"{list(shape)}")
        region.append(slice(start, start + length))
    return tuple(region)


def _packed_varints(raw: bytes, what: str) -> list[int]:
    values, pos = [], 0
    while pos < len(raw):
        v, pos = _varint(raw, pos, what)
        values.append(v)
    return values


def _proto_values(raw: bytes | None, code: int, dtype: np.dtype, name: str, what: str) -> np.ndarray:
    """The values of a V1 slice's TensorProto: its typed repeated field (packed or not), or tensor_content."""
    fields = _fields(raw or b"", what)
    content = _bytes(fields, 4, what)
    if content:
        if len(content) % dtype.itemsize:
            raise _Malformed(f"{what}: {name!r} has {len(content)} content bytes, not whole {dtype.name} values")
        return np.frombuffer(content, dtype=dtype)
    number, varints = _VALUE_FIELD[_base(code)]
    ints: list[int] = []
    chunks: list[np.ndarray] = []
    for wire, value in fields.get(number, []):
        if varints and wire == 0:
            ints.append(value)
        elif varints and wire == 2:
            ints.extend(_packed_varints(value, what))
        elif not varints and wire == 2:
            if len(value) % dtype.itemsize:
                raise _Malformed(f"{what}: {name!r} has a packed field of {len(value)} bytes, not whole "
                                 f"{dtype.name} values")
            chunks.append(np.frombuffer(value, dtype=dtype))
        elif not varints and wire == (5 if dtype.itemsize == 4 else 1):
            chunks.append(np.frombuffer(value, dtype=dtype))
        else:
            raise _Malformed(f"{what}: {name!r} stores its values with protobuf wire type {wire}")
    if varints:
        bits = 8 * dtype.itemsize
        signed = [(v & ((1 << bits) - 1)) - ((v >> (bits - 1) & 1) << bits) for v in ints]
        return np.array(signed, dtype=dtype)
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=dtype)


class _Assembler:
    """Fills each tensor from its slices and checks that they cover it exactly once."""

    def __init__(self, what: str, budget: int) -> None:
        self.what, self.budget = what, budget
        self.arrays: dict[str, np.ndarray] = {}
        self.filled: dict[str, np.ndarray] = {}

    def declare(self, name: str, shape: tuple[int, ...], dtype: np.dtype) -> None:
        if name in self.arrays:
            raise _Malformed(f"{self.what}: {name!r} is listed twice")
        count = math.prod(shape)  # exact (no int64 wrap-around for absurd corrupt shapes)
        if count > self.budget:
            raise _Malformed(f"{self.what}: {name!r} claims shape {list(shape)} ({count} values), more than the "
                             f"file can hold")
        self.arrays[name] = np.zeros(shape, dtype=dtype.newbyteorder("="))
        self.filled[name] = np.zeros(shape, dtype=bool)

    def put(self, name: str, region: tuple[slice, ...], values: np.ndarray) -> None:
        if name not in self.arrays:
            raise _Malformed(f"{self.what}: data for {name!r}, which the checkpoint's table of contents does not list")
        target, filled = self.arrays[name], self.filled[name]
        shape = target[region].shape
        if values.size != math.prod(shape):
            raise _Malformed(f"{self.what}: a slice of {name!r} holds {values.size} values, its extent "
                             f"{list(shape)} needs {math.prod(shape)}")
        if filled[region].any():
            raise _Malformed(f"{self.what}: two slices of {name!r} overlap")
        target[region] = values.reshape(shape)
        filled[region] = True

    def result(self) -> dict[str, np.ndarray]:
        for name, filled in self.filled.items():
            if not filled.all():
                raise _Malformed(f"{self.what}: {name!r} is incomplete: its slices cover {int(filled.sum())} of "
                                 f"{filled.size} values")
        return self.arrays


# ---------------------------------------------------------------------------------------------------- V1
def _read_v1(entries: list[tuple[bytes, bytes]], size: int, what: str) -> dict[str, np.ndarray]:
    """SavedTensorSlices {SavedTensorSliceMeta meta = 1; SavedSlice data = 2}; meta: repeated SavedSliceMeta
    tensor = 1 {name = 1, shape = 2, type = 3, repeated slice = 4}; data: {name = 1, slice = 2, TensorProto
    data = 3}."""
    meta = _bytes(_fields(entries[0][1], what), 1, what)
    if meta is None:
        raise _Malformed(f"{what}: the first entry has no table of contents (SavedTensorSliceMeta)")
    assembler, codes = _Assembler(what, budget=size), {}
    for raw in _repeated(_fields(meta, what), 1, what):
        fields = _fields(raw, what)
        name = _text(_bytes(fields, 1, what), what)
        if name in _SKIPPED:
            continue
        code = _int(fields, 3, what)
        assembler.declare(name, _shape(_bytes(fields, 2, what), name, what), _dtype(code, name, what))
        codes[name] = code
    for _, value in entries[1:]:
        data = _bytes(_fields(value, what), 2, what)
        if data is None:
            raise _Malformed(f"{what}: an entry holds no tensor slice")
        fields = _fields(data, what)
        name = _text(_bytes(fields, 1, what), what)
        if name in _SKIPPED:
            continue
        if name not in codes:
            raise _Malformed(f"{what}: data for {name!r}, which the checkpoint's table of contents does not list")
        target = assembler.arrays[name]
        region = _extent(_bytes(fields, 2, what) or b"", target.shape, name, what)
        assembler.put(name, region, _proto_values(_bytes(fields, 3, what), codes[name], target.dtype, name, what))
    return assembler.result()


# ---------------------------------------------------------------------------------------------------- V2
def _ordered_string(key: bytes, pos: int, what: str) -> tuple[bytes, int]:
    """OrderedCode::ReadString: bytes up to "\\x00\\x01", with "\\x00\\xff" -> 0x00 and "\\xff\\x00" -> 0xff."""
    out = bytearray()
    while pos + 1 < len(key):
        b, nxt = key[pos], key[pos + 1]
        if b == 0x00 and nxt == 0x01:
            return bytes(out), pos + 2
        if b in (0x00, 0xFF):
            if (b, nxt) not in ((0x00, 0xFF), (0xFF, 0x00)):
                break
            out.append(b)
            pos += 2
        else:
            out.append(b)
            pos += 1
    raise _Malformed(f"{what}: a tensor-slice key has a badly encoded name")


def _ordered_signed(key: bytes, pos: int, what: str) -> tuple[int, int]:
    """OrderedCode::ReadSignedNumIncreasing: the sign bit, then as many copies of it as bytes follow, a
    delimiter bit, and the two's-complement value big-endian."""
    if pos >= len(key):
        raise _Malformed(f"{what}: a tensor-slice key ends early")
    negative = not key[pos] & 0x80
    head = key[pos:pos + 2].ljust(2, b"\x00")
    if negative:
        head = bytes(b ^ 0xFF for b in head)
    bits = int.from_bytes(head, "big")
    length = 0
    while length < 10 and bits >> (15 - length) & 1:
        length += 1
    if not 1 <= length <= 10 or pos + length > len(key):
        raise _Malformed(f"{what}: a tensor-slice key has a bad number")
    raw = key[pos:pos + length]
    if negative:
        raw = bytes(b ^ 0xFF for b in raw)
    value = int.from_bytes(raw, "big") & ((1 << (7 * length - 1)) - 1)
    return (~value if negative else value), pos + length


def _slice_key(key: bytes, what: str) -> tuple[str, list[tuple[int, int]]]:
    """checkpoint::EncodeTensorNameSlice: NumIncreasing(0), String(name), NumIncreasing(rank), then
    SignedNumIncreasing(start), SignedNumIncreasing(length) per dimension (length -1: the whole dimension)."""
    name, pos = _ordered_string(key, 1, what)
    if pos >= len(key) or key[pos] > 8 or pos + 1 + key[pos] > len(key):
        raise _Malformed(f"{what}: a tensor-slice key has a bad rank")
    rank = int.from_bytes(key[pos + 1:pos + 1 + key[pos]], "big")
    pos += 1 + key[pos]
    extents = []
    for _ in range(rank):
        start, pos = _ordered_signed(key, pos, what)
        length, pos = _ordered_signed(key, pos, what)
        extents.append((start, length))
    return _text(name, what), extents


def _v2_region(extents: list[tuple[int, int]], shape: tuple[int, ...], name: str, what: str) -> tuple[slice, ...]:
    if len(extents) != len(shape):
        raise _Malformed(f"{what}: a slice of {name!r} has {len(extents)} dimensions, the tensor {len(shape)}")
    region = []
    for (start, length), dim in zip(extents, shape):
        start, length = (0, dim) if length < 0 else (start, length)
        if start < 0 or start + length > dim:
            raise _Malformed(f"{what}: a slice of {name!r} falls outside its shape {list(shape)}")
        region.append(slice(start, start + length))
    return tuple(region)


class _Shards:
    """The `<prefix>.data-0000K-of-0000N` files, read once each."""

    def __init__(self, prefix: str, count: int, what: str) -> None:
        self.prefix, self.count, self.what, self.cache = prefix, count, what, {}
        if not 1 <= count <= 100_000:
            raise _Malformed(f"{what}: the index names {count} data files")

    def load(self, shard: int) -> bytes:
        what = self.what
        if shard not in self.cache:
            path = f"{self.prefix}.data-{shard:05d}-of-{self.count:05d}"
            try:
                self.cache[shard] = Path(path).read_bytes()
            except OSError as e:
                raise CheckpointError(
                    f"{what}: cannot read its data file {path} ({e.strerror or e}): a V2 checkpoint is the "
                    f".index file plus every .data-*-of-{self.count:05d} file beside it; copy them all"
                ) from None
        return self.cache[shard]

    def read(self, shard: int, offset: int, size: int, name: str) -> bytes:
        what = self.what
        if not 0 <= shard < self.count:
            raise _Malformed(f"{what}: {name!r} lives in data file {shard}, but the index names {self.count}")
        data = self.load(shard)
        if offset < 0 or size < 0 or offset + size > len(data):
            raise _Malformed(f"{what}: {name!r} is at bytes [{offset}, {offset + size}) of its data file, which has "
                             f"{len(data)} bytes (truncated?)")
        return data[offset:offset + size]


def _read_v2(entries: list[tuple[bytes, bytes]], prefix: str, what: str) -> dict[str, np.ndarray]:
    """BundleHeaderProto {num_shards = 1, endianness = 2}; BundleEntryProto {dtype = 1, shape = 2,
    shard_id = 3, offset = 4, size = 5, fixed32 crc32c = 6, repeated TensorSliceProto slices = 7}."""
    header = _fields(entries[0][1], what)
    if _int(header, 2, what) != 0:
        raise CheckpointError(f"{what}: the checkpoint was written big-endian; zoo's TensorFlow reader reads "
                              f"little-endian checkpoints only (read it with TensorFlow: tf.train.load_checkpoint)")
    shards = _Shards(prefix, _int(header, 1, what, default=1), what)
    whole, pieces = {}, []
    for key, value in entries[1:]:
        if key.startswith(b"\x00"):
            pieces.append((*_slice_key(key, what), value))
        else:
            whole[_text(key, what)] = value
    assembler = _Assembler(what, budget=sum(len(shards.load(i)) for i in range(shards.count)))

    def values(name: str, fields: dict, dtype: np.dtype) -> np.ndarray:
        offset, size = _int(fields, 4, what), _int(fields, 5, what)
        raw = shards.read(_int(fields, 3, what), offset, size, name)
        crc = fields.get(6, [(5, b"\x00\x00\x00\x00")])[-1][1]
        if not isinstance(crc, bytes) or len(crc) != 4 or _unmask(struct.unpack("<I", crc)[0]) != _crc32c(raw):
            raise _Malformed(f"{what}: {name!r} fails its CRC-32C check (its data file is corrupt)")
        if len(raw) % dtype.itemsize:
            raise _Malformed(f"{what}: {name!r} has {len(raw)} bytes, not whole {dtype.name} values")
        return np.frombuffer(raw, dtype=dtype)

    for name, raw in whole.items():
        if name in _SKIPPED:
            continue
        fields = _fields(raw, what)
        shape, dtype = _shape(_bytes(fields, 2, what), name, what), _dtype(_int(fields, 1, what), name, what)
        assembler.declare(name, shape, dtype)
        if not fields.get(7):
            assembler.put(name, tuple(slice(0, d) for d in shape), values(name, fields, dtype))
    for name, extents, raw in pieces:
        if name not in assembler.arrays:
            raise _Malformed(f"{what}: a slice of {name!r}, which the index does not list")
        target = assembler.arrays[name]
        fields = _fields(raw, what)
        dtype = _dtype(_int(fields, 1, what), name, what)
        if (dtype.kind, dtype.itemsize) != (target.dtype.kind, target.dtype.itemsize):
            raise _Malformed(f"{what}: a slice of {name!r} has another dtype than the tensor")
        assembler.put(name, _v2_region(extents, target.shape, name, what), values(name, fields, dtype))
    return assembler.result()


# ------------------------------------------------------------------------------------------------ the API
_DATA_SUFFIX = re.compile(r"\.data-\d{5}-of-\d{5}$")


def _locate(path: str) -> tuple[Path, str]:
    """The table file to open and the V2 prefix (meaningful only if the table turns out to be an index):
    `path` may be a V1 file, a V2 prefix, its .index or one of its .data files, or a folder with a
    TensorFlow `checkpoint` state file."""
    p = Path(path)
    if p.is_dir():
        state = p / "checkpoint"
        found = re.search(r'^model_checkpoint_path:\s*"(.*)"', state.read_text(errors="replace"), re.M) \
            if state.is_file() else None
        if found is None:
            raise CheckpointError(f"{path} is a folder without a TensorFlow 'checkpoint' file: pass the checkpoint "
                                  f"file itself (V1: the .ckpt file; V2: the prefix of its .index / .data-* files)")
        return _locate(str(p / found.group(1)))
    if Path(path + ".index").is_file():
        return Path(path + ".index"), path
    if path.endswith(".index") and p.is_file():
        return p, path[: -len(".index")]
    if _DATA_SUFFIX.search(path) and Path(_DATA_SUFFIX.sub("", path) + ".index").is_file():
        prefix = _DATA_SUFFIX.sub("", path)
        return Path(prefix + ".index"), prefix
    if p.is_file():
        return p, path
    raise CheckpointError(
        f"no TensorFlow checkpoint at {path}: give the V1 checkpoint file (e.g. multistyle-pastiche-generator-"
        f"monet.ckpt), or a V2 checkpoint's prefix (the name before .index and .data-00000-of-00001)"
    )


def is_tf_checkpoint(path: str | os.PathLike[str]) -> bool:
    """Whether `path` names a TensorFlow checkpoint (any form `read_tf_checkpoint` takes) by its table's
    magic number, without reading it: lets a caller pick this reader over `torch.load` for an official file."""
    try:
        table_path, _ = _locate(os.fspath(path))
        with open(table_path, "rb") as f:
            if f.seek(0, os.SEEK_END) < _FOOTER_SIZE:
                return False
            f.seek(-8, os.SEEK_END)
            lo, hi = struct.unpack("<II", f.read(8))
    except (CheckpointError, OSError):
        return False
    return (hi << 32 | lo) == _TABLE_MAGIC


def read_tf_checkpoint(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """{variable name: array} of a TensorFlow checkpoint, without TensorFlow.

    `path`: a V1 checkpoint file (one file, e.g. magenta's `multistyle-pastiche-generator-monet.ckpt`), a V2
    checkpoint prefix (`model.ckpt-1000` for `model.ckpt-1000.index` + `.data-*`) or its `.index` file,
    or a folder whose TensorFlow `checkpoint` file names one. Partitioned variables come back whole.
    Arrays are float32, float64, int32 or int64 in native byte order, with TensorFlow's shapes (conv
    kernels HWIO). Raises `CheckpointError` for a missing, truncated, corrupt or unsupported file."""
    table_path, prefix = _locate(os.fspath(path))
    what = f"TensorFlow checkpoint {table_path}"
    try:
        data = table_path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"cannot read {table_path}: {e.strerror or e}") from None
    try:
        entries = _table(data, what)
        if not entries or entries[0][0] != b"":
            raise _Malformed(f"{what}: the table has no header entry (empty key)")
        first = _fields(entries[0][1], what)
        is_v1 = bool(first.get(1)) and first[1][0][0] == 2  # V1: a meta message; V2: num_shards, a varint
        return _read_v1(entries, len(data), what) if is_v1 else _read_v2(entries, prefix, what)
    except _Malformed as e:
        raise CheckpointError(f"cannot read {e}; {_CORRUPT_ADVICE}") from None
    except (struct.error, ValueError, IndexError, OverflowError) as e:  # a safety net: name the file, never a raw error
        raise CheckpointError(f"cannot read {what}: {type(e).__name__}: {e}; {_CORRUPT_ADVICE}") from None
