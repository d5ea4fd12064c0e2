"""Opening HDF5 inputs with errors that say what was expected, and writing HDF5 outputs sealed with a content digest.

Every HDF5 file delaynir writes (``writing_hdf5``: DelayGraph, netx, PyNN, NIR, synthetic data, test vectors)
carries ``delaynir_content_sha256``, a root attribute other tools ignore: SHA-256 over every attribute and every
dataset (name, dtype, shape, values) in name order. ``reading_hdf5`` recomputes it where it is present and refuses
a file whose contents changed after it was written (a flipped byte in transit or on disk) with one clear error;
files without it (other tools', earlier versions') load as before.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from delaynir.common.memory import check_memory
from delaynir.common.outputs import atomic_path
from delaynir.errors import ConfigError, DelayNIRError

#: What h5py raises when the bytes of an HDF5 file are damaged (bad checksums, heaps, object headers).
HDF5_DAMAGE = (OSError, KeyError, RuntimeError)
DIGEST_ATTR = "delaynir_content_sha256"  #: the root attribute holding a written file's content digest


def _value_bytes(value: Any) -> bytes:
    """An attribute's or dataset's values as bytes (variable-length elements one by one)."""
    if isinstance(value, (str, bytes)):
        # h5py decodes undecodable stored bytes with surrogateescape: encode them back as they were
        return value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
    array = np.asarray(value)
    if array.dtype.kind == "O":
        return b"".join(_value_bytes(element) for element in array.reshape(-1))
    return f"{array.dtype.str}{array.shape}".encode() + np.ascontiguousarray(array).tobytes()


def content_digest(f: h5py.File) -> str:
    """SHA-256 over every attribute (but the digest's own) and every dataset of ``f``, in name order."""
    digest = hashlib.sha256()

    def add(name: str, obj: h5py.HLObject) -> None:
        for key in sorted(obj.attrs):
            if not (name == "/" and key == DIGEST_ATTR):
                digest.update(_value_bytes(f"{name}@{key}=") + _value_bytes(obj.attrs[key]))
        if isinstance(obj, h5py.Dataset):
            digest.update(_value_bytes(f"{name}:") + _value_bytes(obj[()]))

    add("/", f)
    names: list[str] = []
    f.visit(names.append)
    for name in sorted(names):
        add(name, f[name])
    return digest.hexdigest()


def seal(f: h5py.File) -> None:
    """Store ``f``'s content digest in it (written last, after everything else)."""
    f.attrs[DIGEST_ATTR] = content_digest(f)


#: the files whose digest was found to match in this process, by identity and state (device, inode, size, mtime):
#: a dataset is opened several times while it is set up, and each open would otherwise read the whole file again
_VERIFIED: set[tuple[str, int, int, int, int]] = set()


def _matches(f: h5py.File, path: str | os.PathLike) -> bool | None:
    """Whether the open file ``f`` (at ``path``) matches its stored content digest (None: it stores none)."""
    stored = f.attrs.get(DIGEST_ATTR)
    if stored is None:
        return None
    state = os.stat(path)
    key = (str(stored), state.st_dev, state.st_ino, state.st_size, state.st_mtime_ns)
    if key in _VERIFIED:
        return True
    if (stored.decode() if isinstance(stored, bytes) else str(stored)) != content_digest(f):
        return False
    _VERIFIED.add(key)
    return True


def _check_seal(f: h5py.File, path: str | os.PathLike, error: type[DelayNIRError]) -> None:
    if _matches(f, path) is False:
        raise error(
            f"{path}: its contents changed after delaynir wrote it (the content digest in its "
            f"{DIGEST_ATTR} attribute does not match): a byte was altered in transit or on disk; get an intact "
            "copy or write the file again"
        )


def sealed(path: str | os.PathLike) -> bool | None:
    """Whether the HDF5 file at ``path`` carries a content digest that matches (None: it carries none)."""
    with h5py.File(path, "r") as f:
        return _matches(f, path)


def open_hdf5(path: str | os.PathLike, error: type[DelayNIRError], expected: str) -> h5py.File:
    """``path`` opened read-only; ``error`` naming the file and ``expected`` if it is missing or not HDF5."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: no such file (expected {expected})")
    try:
        if not h5py.is_hdf5(path):
            raise error(f"{path}: not an HDF5 file (expected {expected})")
        return h5py.File(path, "r")
    except OSError as exc:
        raise error(f"{path}: cannot be opened as HDF5 ({exc})") from None


@contextmanager
def reading_hdf5(path: str | os.PathLike, error: type[DelayNIRError], expected: str) -> Iterator[h5py.File]:
    """``open_hdf5`` for a ``with`` block; what h5py raises in it on a damaged file becomes ``error`` too.

    Every dataset's declared size is checked against memory first: HDF5 lets a small file declare a
    dataset of any shape, whose reading would then exhaust memory.
    """
    with open_hdf5(path, error, expected) as f:
        try:
            f.visititems(_check_size)
            _check_seal(f, path, error)
            yield f
        except HDF5_DAMAGE as exc:
            raise error(damaged(path, exc)) from None


def _check_size(name: str, obj: h5py.HLObject) -> None:
    if isinstance(obj, h5py.Dataset):
        check_memory(
            (obj.size or 0) * obj.dtype.itemsize,
            f"{obj.file.filename}: dataset {name} of shape {obj.shape}",
            "the file declares more data than it holds; it is damaged or made to exhaust memory",
        )


def damaged(path: str | os.PathLike, exc: BaseException) -> str:
    """The message for a file h5py cannot read although it opened."""
    return f"{path}: damaged, part of it cannot be read ({type(exc).__name__}: {exc}); restore or regenerate the file"


@contextmanager
def writing_hdf5(
    path: str | os.PathLike,
    *,
    overwrite: bool = True,
    error: type[DelayNIRError] = ConfigError,
    track_order: bool | None = None,
) -> Iterator[h5py.File]:
    """A new HDF5 file, built in memory and committed at ``path`` when the block ends (``atomic_path``: nothing at
    ``path`` on any error, an existing file replaced only with ``overwrite``).

    Built in memory because HDF5 itself crashes the process (a segmentation fault in ``File.close``; h5py 3.16) when
    the disk fills while it writes; Python's write of the finished bytes fails cleanly (ENOSPC), and atomic_path
    turns that into one error naming the path. The file is sealed with its content digest (module docstring).
    """
    buffer = io.BytesIO()
    with atomic_path(path, overwrite=overwrite, error=error) as tmp:
        with h5py.File(buffer, "w", track_order=track_order) as f:
            yield f
            seal(f)
        tmp.write_bytes(buffer.getbuffer())
