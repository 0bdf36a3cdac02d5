"""Read PyTorch checkpoints (.pth/.pt zip pickles) and .safetensors files with NumPy alone.

No PyTorch is needed and no pickle code runs: the unpickler resolves only the handful of globals a state dict is made
of (tensor rebuild functions, storage types, OrderedDict). Any other global becomes an inert `Opaque` record, so a
training checkpoint that carries extra metadata (an argparse Namespace, optimizer state) still yields its weights
without executing anything it names.
"""
from __future__ import annotations

import collections
import json
import pickle
import struct
import zipfile
from typing import Any, Dict

import numpy as np

from ..errors import UserError

_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16", "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}
_SAFETENSORS_DTYPES = {
    "F32": np.float32, "F64": np.float64, "F16": np.float16, "BF16": "bfloat16", "I64": np.int64,
    "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_,
}


class Opaque:
    """Stand-in for any global a checkpoint names that a state dict does not need; it only records its arguments."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __call__(self, *args: Any, **kwargs: Any) -> "Opaque":
        return Opaque(*args)


class _StorageType:
    def __init__(self, name: str) -> None:
        self.name = name


def _bf16_to_f32(raw: np.ndarray) -> np.ndarray:
    return (raw.astype(np.uint32) << 16).view(np.float32)


def _frombuffer(buf: bytes, dtype) -> np.ndarray:
    if isinstance(dtype, str):  # bfloat16: NumPy has no such type; widen to float32 exactly
        return _bf16_to_f32(np.frombuffer(buf, dtype="<u2"))
    return np.frombuffer(buf, dtype=np.dtype(dtype).newbyteorder("<"))


def _rebuild_tensor(storage: np.ndarray, offset: int, size, stride, *_unused) -> np.ndarray:
    if len(size) == 0:
        return storage[offset:offset + 1].reshape(()).copy()
    itemsize = storage.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(storage[offset:], shape=tuple(size),
                                           strides=tuple(s * itemsize for s in stride))
    return np.ascontiguousarray(view)


def _rebuild_parameter(data, *_unused):
    return data


class _RestrictedUnpickler(pickle.Unpickler):
    _SAFE = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    }

    def __init__(self, fileobj, archive: zipfile.ZipFile, prefix: str) -> None:
        super().__init__(fileobj)
        self.archive, self.prefix, self.cache = archive, prefix, {}

    def find_class(self, module: str, name: str):
        if (module, name) in self._SAFE:
            return self._SAFE[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        if module == "torch" and name == "UntypedStorage":
            return _StorageType("ByteStorage")
        return Opaque

    def persistent_load(self, pid):
        # ('storage', storage_type, key, location, numel): raw little-endian bytes in <prefix>/data/<key>.
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise UserError(f"unsupported persistent object {pid!r} in the checkpoint")
        storage_type, key = pid[1], str(pid[2])
        if key not in self.cache:
            name = storage_type.name if isinstance(storage_type, _StorageType) else "ByteStorage"
            data = self.archive.read(f"{self.prefix}/data/{key}")
            self.cache[key] = _frombuffer(data, _STORAGE_DTYPES[name])
        return self.cache[key]


def read_torch_zip(path: str) -> Any:
    """Unpickle a torch.save() zip archive into nested dicts of NumPy arrays."""
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise UserError(f"'{path}' is not a PyTorch zip checkpoint (truncated, or saved in the legacy format: "
                        f"re-save it with torch.save(state_dict, path) from PyTorch >= 1.6)") from None
    with archive:
        pkl = [n for n in archive.namelist() if n.endswith("data.pkl")]
        if not pkl:
            raise UserError(f"'{path}' is a zip file but holds no data.pkl: not a PyTorch checkpoint")
        prefix = pkl[0][: -len("/data.pkl")]
        try:
            with archive.open(pkl[0]) as fh:
                return _RestrictedUnpickler(fh, archive, prefix).load()
        except (KeyError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as exc:
            raise UserError(f"'{path}' is damaged ({type(exc).__name__}: {exc}); download or save it again") from None


def read_safetensors(path: str) -> Dict[str, np.ndarray]:
    """Parse a .safetensors file: 8-byte little-endian header length, JSON header, raw tensor bytes."""
    with open(path, "rb") as fh:
        blob = fh.read()
    try:
        (header_len,) = struct.unpack("<Q", blob[:8])
        header = json.loads(blob[8:8 + header_len])
        base = 8 + header_len
        out = {}
        for name, info in header.items():
            if name == "__metadata__":
                continue
            start, end = info["data_offsets"]
            if base + end > len(blob):
                raise ValueError(f"tensor '{name}' runs past the end of the file")
            out[name] = _frombuffer(blob[base + start:base + end], _SAFETENSORS_DTYPES[info["dtype"]]).reshape(
                info["shape"]).copy()
        return out
    except (struct.error, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"'{path}' is not a valid safetensors file ({exc}); download or save it again") from None


def load_state_dict(path: str) -> Dict[str, np.ndarray]:
    """Read a state dict from .safetensors or a torch zip; unwrap `state_dict`/`model` and DataParallel's `module.`."""
    if path.endswith(".safetensors"):
        obj: Any = read_safetensors(path)
    else:
        obj = read_torch_zip(path)
    for wrapper in ("state_dict", "model", "state_dict_ema"):
        if isinstance(obj, dict) and wrapper in obj and isinstance(obj[wrapper], dict):
            obj = obj[wrapper]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, np.ndarray) for v in obj.values()):
        raise UserError(f"'{path}' holds no state dict of tensors (nor one under 'state_dict' or 'model')")
    if obj and all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return dict(obj)
