"""Opening HDF5 inputs with errors that say what was expected."""

from __future__ import annotations

import os
from pathlib import Path

import h5py

from delaynir.errors import DelayNIRError


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
