"""Opening HDF5 inputs with errors that say what was expected."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import h5py

from delaynir.common.memory import check_memory
from delaynir.common.outputs import atomic_path
from delaynir.errors import ConfigError, DelayNIRError

#: What h5py raises when the bytes of an HDF5 file are damaged (bad checksums, heaps, object headers).
HDF5_DAMAGE = (OSError, KeyError, RuntimeError)


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
    turns that into one error naming the path.
    """
    buffer = io.BytesIO()
    with atomic_path(path, overwrite=overwrite, error=error) as tmp:
        with h5py.File(buffer, "w", track_order=track_order) as f:
            yield f
        tmp.write_bytes(buffer.getbuffer())
