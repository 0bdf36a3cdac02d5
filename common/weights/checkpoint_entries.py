"""The names and shapes in a MindSpore .ckpt, read without MindSpore, so that eval/predict/export/train.py can refuse a
wrong file before MindSpore loads (seconds on a CANN image).

A .ckpt is one protobuf message (MindSpore's checkpoint.proto):

    Checkpoint { repeated Value value = 1; }
    Value { required string tag = 1; oneof { TensorProto tensor = 2; MapTensorProto maptensor = 3; } }
    TensorProto { repeated int64 dims = 1; required string tensor_type = 2; required bytes tensor_content = 3; }

optionally followed by the 17-byte trailer `crc_num` + 10 bytes that `save_checkpoint(crc_check=True)` appends. The
walk below reads the protobuf wire format directly: field keys, varints and lengths, skipping the tensor bytes (the
file is memory-mapped, so a 460 MB checkpoint costs its few thousand keys, not its size). It refuses what
MindSpore's parser refuses in practice (a truncated file, text, another format, an entry without its name or data),
and a file without entries, which no network loads.
"""
from __future__ import annotations

import mmap
from typing import Dict, Iterator, Tuple

_CRC_MARK = b"crc_num"  # MindSpore: content[-17:-10] == b"crc_num", the CRC in the last 10 bytes


def _varint(buf, pos: int, end: int) -> Tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end:
            raise ValueError("a number runs past the end of its field")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise ValueError("a number longer than 10 bytes")


def _fields(buf, pos: int, end: int) -> Iterator[Tuple[int, int, object]]:
    """(field number, wire type, value) of each field of the message in buf[pos:end]; a length-delimited value is
    its (start, stop), a fixed-size one None."""
    while pos < end:
        key, pos = _varint(buf, pos, end)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise ValueError("a field numbered 0")
        value: object = None
        if wire == 0:
            value, pos = _varint(buf, pos, end)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            size, pos = _varint(buf, pos, end)
            value, pos = (pos, pos + size), pos + size
        else:
            raise ValueError(f"wire type {wire}, which a checkpoint never holds")
        if pos > end:
            raise ValueError("a field runs past the end of the file")
        yield field, wire, value


def _tensor_shape(buf, start: int, stop: int) -> Tuple[int, ...]:
    dims, has_type, has_content = [], False, False
    for field, wire, value in _fields(buf, start, stop):
        if field == 1 and wire == 0:
            dims.append(value)
        elif field == 1 and wire == 2:  # packed dims
            pos, end = value
            while pos < end:
                dim, pos = _varint(buf, pos, end)
                dims.append(dim)
        has_type |= field == 2
        has_content |= field == 3
    if not (has_type and has_content):
        raise ValueError("an entry without its type or data")
    return tuple(dims)


def _entries(buf, end: int) -> Dict[str, Tuple[int, ...]]:
    out: Dict[str, Tuple[int, ...]] = {}
    for field, wire, value in _fields(buf, 0, end):
        if field != 1 or wire != 2:
            continue  # an unknown field: protobuf parsers skip it
        start, stop = value
        name, shape = None, ()
        for sub, sub_wire, sub_value in _fields(buf, start, stop):
            if sub == 1 and sub_wire == 2:
                name = bytes(buf[sub_value[0]:sub_value[1]]).decode("utf-8")
            elif sub == 2 and sub_wire == 2:
                shape = _tensor_shape(buf, *sub_value)
        if name is None:
            raise ValueError("an entry without a name")
        out.setdefault(name, shape)  # MindSpore writes a large tensor in several pieces under one name
    return out


def checkpoint_shapes(path: str) -> Dict[str, Tuple[int, ...]]:
    """Name -> shape of every entry of the .ckpt at `path`. Raises ValueError saying what is wrong when the file is
    not a MindSpore checkpoint (empty, truncated, another format) and OSError when it cannot be opened."""
    with open(path, "rb") as handle:
        try:
            buf = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:
            raise ValueError("the file is empty") from None
        try:
            end = len(buf)
            if end >= 17 and buf[end - 17:end - 10] == _CRC_MARK:
                end -= 17
            shapes = _entries(buf, end)
        except UnicodeDecodeError:
            raise ValueError("an entry name that is not UTF-8") from None
        finally:
            buf.close()
    if not shapes:
        raise ValueError("it holds no parameters")
    return shapes
