"""Reading PyTorch files into numpy arrays, without torch and without trusting them.

A `.pth` file is a pickle whose tensors point at raw storages kept beside it: in a zip archive
(`<name>/data.pkl` and one `<name>/data/<key>` file per storage, torch >= 1.6) or, in the
legacy format, appended after the pickle in one stream (each storage an int64 element count
followed by its bytes). Unpickling normally imports and calls whatever the pickle names, so
`read_state_dict` uses an unpickler that resolves only the handful of names a state dict needs
(`collections.OrderedDict`, torch's tensor rebuild functions and storage classes) to local
stand-ins; any other name is refused before anything runs.

A TorchScript archive (`torch.jit.save`) is the same zip layout whose pickle holds module
objects of classes named `__torch__.<module>.<Class>`, each built from a dict of its attributes.
`read_script_module` additionally resolves those names, and only those, to `ScriptObject`: an
inert record of the class name and the attributes. The TorchScript source in the archive's
`code/` folder is never read, let alone run: the architecture is known to the caller.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile
from collections.abc import Iterator
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


class ScriptObject:
    """An object of a TorchScript class, as data: `type_name` and `attributes`, nothing else.

    Unpickling makes one subclass per class name (`NEWOBJ` needs a class) and fills
    `attributes` from the pickled dict (`BUILD`); no code of the original class exists here.
    """

    type_name = ""

    def __new__(cls):
        # Unpickling calls `cls.__new__(cls)` (NEWOBJ), never `__init__`.
        self = super().__new__(cls)
        self.attributes = {}
        return self

    def __setstate__(self, state):
        if not isinstance(state, dict):
            raise KerasrError(f"a {self.type_name} object in the archive has no attribute dict")
        self.attributes = {str(k): v for k, v in state.items()}

    def __repr__(self):
        return f"ScriptObject({self.type_name}, {sorted(self.attributes)})"

    @property
    def class_name(self) -> str:
        """The class name without its module: `Conv2dLayer` for `__torch__.x.Conv2dLayer`."""
        return self.type_name.rpartition(".")[2]

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, ScriptObject]]:
        """This object and every `ScriptObject` below it, depth first in attribute order, with
        dotted paths as PyTorch's `named_modules` gives them (`layers.mixed.tower.conv`)."""
        yield prefix, self
        for key, value in self.attributes.items():
            if isinstance(value, ScriptObject):
                yield from value.named_modules(f"{prefix}.{key}" if prefix else key)


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(name) for name in _STORAGE_DTYPES},
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(
        self, file, storages: dict[str, _Storage], legacy: bool, script_objects: bool = False
    ):
        super().__init__(file)
        self.storages = storages
        self.legacy = legacy
        self.script_classes: dict[str, type] | None = {} if script_objects else None

    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if self.script_classes is not None and (module, name) in _SCRIPT_ALLOWED:
            return _SCRIPT_ALLOWED[(module, name)]
        if self.script_classes is not None and _is_script_class(module, name):
            qualified = f"{module}.{name}"
            if qualified not in self.script_classes:
                self.script_classes[qualified] = type(
                    name, (ScriptObject,), {"type_name": qualified}
                )
            return self.script_classes[qualified]
        kind = "a TorchScript module" if self.script_classes is not None else "a state dict"
        raise KerasrError(
            f"the checkpoint names {module}.{name}, which {kind} does not need; refusing to load it"
        )

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


def _build_intlist(values):
    # torch.jit._pickle.build_intlist(list): how TorchScript pickles a `List[int]` attribute.
    if not isinstance(values, list) or not all(type(v) is int for v in values):
        raise KerasrError("a List[int] attribute in the archive holds something else")
    return values


# Beyond a state dict's names, a TorchScript module's pickle needs only these.
_SCRIPT_ALLOWED = {("torch.jit._pickle", "build_intlist"): _build_intlist}


def _is_script_class(module: str, name: str) -> bool:
    # TorchScript names its classes after the defining module, under the `__torch__` root.
    parts = module.split(".")
    return parts[0] == "__torch__" and all(p.isidentifier() for p in [*parts, name])


# What a damaged or hostile pickle raises from the few operations the unpickler allows.
_MALFORMED = (
    pickle.UnpicklingError,
    EOFError,
    ValueError,
    TypeError,
    AttributeError,
    IndexError,
    KeyError,
    RecursionError,
    struct.error,
    zipfile.BadZipFile,
)


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
    except _MALFORMED as e:
        raise KerasrError(f"cannot read PyTorch checkpoint {path}: {e}") from None
    if not isinstance(result, dict) or not all(
        isinstance(v, _TensorRecipe | int) for v in result.values()
    ):
        raise KerasrError(f"{path} does not hold a PyTorch state dict of tensors")
    return {str(k): v.array() for k, v in result.items() if isinstance(v, _TensorRecipe)}


def read_script_module(path: str | Path) -> ScriptObject:
    """Reads the module tree of a TorchScript archive, tensors as numpy arrays.

    Args:
        path: a file written by `torch.jit.save`.

    Returns:
        The top module; `named_modules()` walks the tree, each module's `attributes` hold
        its parameters (arrays), settings (ints, lists) and submodules.

    Raises:
        KerasrError: if the file is missing, truncated or not a TorchScript archive, or its
            pickle names anything but module classes, tensors and their storages.
    """
    path = Path(path)
    if not path.is_file():
        raise KerasrError(f"TorchScript archive {path} does not exist")
    if not zipfile.is_zipfile(path):
        raise KerasrError(
            f"{path} is not a TorchScript archive (not a complete zip file; truncated?)"
        )
    try:
        result = _read_zip(path, script_objects=True)
    except _MALFORMED as e:
        raise KerasrError(f"cannot read TorchScript archive {path}: {e}") from None
    if not isinstance(result, ScriptObject):
        raise KerasrError(f"{path} does not hold a TorchScript module")
    return _with_arrays(result, path, set())


def _with_arrays(value, path: Path, open_modules: set[int]):
    # Tensors are recipes until the storages are read; replace them in place, depth first.
    # A module shared by two parents is fine; one inside itself would make walks endless.
    if isinstance(value, _TensorRecipe):
        return value.array()
    if isinstance(value, ScriptObject):
        if id(value) in open_modules:
            raise KerasrError(f"{path} holds a module that contains itself")
        open_modules.add(id(value))
        value.attributes = {
            k: _with_arrays(v, path, open_modules) for k, v in value.attributes.items()
        }
        open_modules.discard(id(value))
        return value
    if isinstance(value, list | tuple):
        return type(value)(_with_arrays(v, path, open_modules) for v in value)
    if isinstance(value, dict):
        return {k: _with_arrays(v, path, open_modules) for k, v in value.items()}
    return value


def _read_zip(path: Path, script_objects: bool = False):
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
            io.BytesIO(archive.read(pickles[0])), storages, False, script_objects
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
