"""Run directories and checkpoints: layout, atomic writes, safe loading.

A run directory holds:

    config.toml      the effective TrainConfig (reusable with --config)
    metrics.jsonl    one JSON object per finished epoch
    checkpoint.pt    latest full training state (model, optimiser, scheduler, RNG, epoch)
    model.pt         the model with the best validation accuracy (rounded delays)

``.pt`` files contain only tensors and plain Python values and are loaded with
``torch.load(weights_only=True)``: a checkpoint can never execute code.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch

from delaynir.errors import CheckpointError, ConfigError

CONFIG, METRICS, CHECKPOINT, MODEL = "config.toml", "metrics.jsonl", "checkpoint.pt", "model.pt"
FORMAT_VERSION = 1


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically.

    On any error the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def save_pt(path: str | Path, payload: dict[str, Any]) -> None:
    """torch.save ``payload`` atomically (tensors and plain values only)."""
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def torch_load_safely(path: Path, advice: str = "") -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU: tensors and plain values, never unpickled code.

    CheckpointError naming the file (and ``advice``, what to do) when it cannot be loaded that way.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or unsafe files
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise CheckpointError(
            f"{path} cannot be loaded safely ({type(exc).__name__}: {first}); "
            f"it is corrupt, truncated, or contains objects other than tensors and plain values{advice}"
        ) from None


def load_pt(path: str | Path) -> dict[str, Any]:
    """Load a .pt file written by ``save_pt`` without unpickling arbitrary objects."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist; is this a run directory written by `delaynir train`?")
    payload = torch_load_safely(path)
    if not isinstance(payload, dict) or payload.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} is not a delaynir checkpoint of format version {FORMAT_VERSION}; retrain or use a matching version"
        )
    return payload


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / METRICS
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_metrics(run_dir: str | Path, rows: list[dict[str, Any]]) -> None:
    write_text_atomic(Path(run_dir) / METRICS, "".join(json.dumps(r) + "\n" for r in rows))


@contextmanager
def atomic_dir(out: Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a fresh hidden sibling of ``out``; on success rename it to ``out`` (replacing it with ``overwrite``).

    On any error the temporary directory is removed and ``out`` is untouched.
    """
    if out.exists() and not overwrite:
        raise ConfigError(f"{out} already exists; choose another --out or pass --overwrite to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        for file in tmp.iterdir():  # temporary files are private; a hand-off is meant to be read
            file.chmod(0o666 & ~umask)
        tmp.chmod(0o777 & ~umask)
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
            os.replace(out, old / out.name)
            os.replace(tmp, out)
            shutil.rmtree(old)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
