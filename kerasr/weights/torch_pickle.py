"""Reading a PyTorch `.pth` state dict into numpy arrays, without torch and without trusting it.

A `.pth` file is a pickle whose tensors point at raw storages kept beside it: in a zip archive
(`<name>/data.pkl` and one `<name>/data/<key>` file per storage, torch >= 1.6) or, in the
legacy format, appended after the pickle in one stream (each storage an int64 element count
followed by its bytes). Unpickling normally imports and calls whatever the pickle names, so
`read_state_dict` uses an unpickler that resolves only the handful of names a state dict needs
(`collections.OrderedDict`, torch's tensor rebuild functions and storage classes) to local
stand-ins; any other name is refused before anything runs.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np

from kerasr.errors import KerasrError

# torch.save's legacy header: a magic number, then the protocol version.
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001

_STORAGE_DTYPES = {
    "DoubleStorage": np.float64,
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StorageType:
    """Stands in for `torch.FloatStorage` and friends: only its element type matters."""

    def __init__(self, name: str):
        self.name = name
        self.dtype = np.dtype(_STORAGE_DTYPES[name]).newbyteorder("<")


class _Storage:
    """A storage named by the pickle; its bytes are filled in once they have been read."""

    def __init__(self, storage_type: _StorageType, numel: int):
        self.dtype = storage_type.dtype
        self.numel = numel
        self.data: np.ndarray | None = None


def _rebuild_tensor(storage, storage_offset, size, stride, *_):
    # torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks, ...):
    # the tensor is built after the storages are read (legacy files append them after the
    # pickle), so return a recipe and resolve it in `read_state_dict`.
    return _TensorRecipe(storage, int(storage_offset), tuple(size), tuple(stride))


def _rebuild_parameter(data, *_):
    # torch._utils._rebuild_parameter(data, requires_grad, hooks): a Parameter is its tensor.
    return data


class _TensorRecipe:
    def __init__(self, storage: _Storage, offset: int, size: tuple, stride: tuple):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def array(self) -> np.ndarray:
        data = self.storage.data
        if data is None:
            raise KerasrError("a tensor in the checkpoint points at a storage that is missing")
        extent = 1 + sum((n - 1) * s for n, s in zip(self.size, self.stride, strict=True) if n)
        if self.offset + (extent if all(self.size) else 0) > len(data):
            raise KerasrError("a tensor in the checkpoint is larger than its storage")
        strides = tuple(s * data.itemsize for s in self.stride)
        view = np.lib.stride_tricks.as_strided(data[self.offset :], self.size, strides)
        return np.array(view, dtype=data.dtype.newbyteorder("="))


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(name) for name in _STORAGE_DTYPES},
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, storages: dict[str, _Storage], legacy: bool):
        super().__init__(file)
        self.storages = storages
        self.legacy = legacy

    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise KerasrError(
                f"the checkpoint names {module}.{name}, which a state dict does not need; "
                "refusing to load it"
            ) from None

    def persistent_load(self, pid):
        # ('storage', storage type, key, location, numel[, view metadata in legacy files])
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise KerasrError(f"unexpected persistent id in the checkpoint: {pid!r:.80}")
        storage_type, key, numel = pid[1], str(pid[2]), int(pid[4])
        if not isinstance(storage_type, _StorageType):
            raise KerasrError(f"unexpected storage type in the checkpoint: {storage_type!r:.80}")
        if self.legacy and len(pid) > 5 and pid[5] is not None:
            raise KerasrError("storage views of old PyTorch versions are not supported")
        if key not in self.storages:
            self.storages[key] = _Storage(storage_type, numel)
        return self.storages[key]


def read_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """Reads the tensors of a PyTorch `.pth` state dict as numpy arrays.

    Args:
        path: a file written by `torch.save(model.state_dict(), path)`, in the zip format
            or the legacy one.

    Returns:
        Parameter name -> array, in file order.

    Raises:
        KerasrError: if the file is missing, truncated, not a state dict, or names anything a
            state dict does not need.
    """
    path = Path(path)
    try:
        if zipfile.is_zipfile(path):
            result = _read_zip(path)
        else:
            with open(path, "rb") as f:
                result = _read_legacy(f)
    except (pickle.UnpicklingError, EOFError, ValueError, struct.error, zipfile.BadZipFile) as e:
        raise KerasrError(f"cannot read PyTorch checkpoint {path}: {e}") from None
    if not isinstance(result, dict) or not all(
        isinstance(v, _TensorRecipe | int) for v in result.values()
    ):
        raise KerasrError(f"{path} does not hold a PyTorch state dict of tensors")
    return {str(k): v.array() for k, v in result.items() if isinstance(v, _TensorRecipe)}


def _read_zip(path: Path):
    storages: dict[str, _Storage] = {}
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if not pickles:
            raise KerasrError(f"{path} is a zip archive without data.pkl; not a PyTorch file")
        prefix = pickles[0].removesuffix("data.pkl")
        if f"{prefix}byteorder" in names and archive.read(f"{prefix}byteorder") != b"little":
            raise KerasrError(f"{path} was written on a big-endian machine; not supported")
        unpickler = _RestrictedUnpickler(
            io.BytesIO(archive.read(pickles[0])), storages, legacy=False
        )
        result = unpickler.load()
        for key, storage in storages.items():
            raw = archive.read(f"{prefix}data/{key}")
            storage.data = _array(raw, storage)
    return result


def _read_legacy(f):
    if pickle.load(f) != _LEGACY_MAGIC or pickle.load(f) != _LEGACY_PROTOCOL:
        raise ValueError("not a PyTorch file (no torch.save header)")
    sys_info = _RestrictedUnpickler(f, {}, legacy=True).load()
    if not sys_info.get("little_endian", True):
        raise ValueError("written on a big-endian machine; not supported")
    storages: dict[str, _Storage] = {}
    result = _RestrictedUnpickler(f, storages, legacy=True).load()
    keys = _RestrictedUnpickler(f, {}, legacy=True).load()
    for key in keys:
        storage = storages[str(key)]
        (count,) = struct.unpack("<q", f.read(8))
        if count != storage.numel:
            raise ValueError(
                f"storage {key} holds {count} elements, the pickle says {storage.numel}"
            )
        storage.data = _array(f.read(count * storage.dtype.itemsize), storage)
    return result


def _array(raw: bytes, storage: _Storage) -> np.ndarray:
    if len(raw) != storage.numel * storage.dtype.itemsize:
        raise ValueError("a tensor storage is truncated")
    return np.frombuffer(raw, storage.dtype)
