"""Run directories and checkpoints: layout, atomic writes, safe loading.

A run directory holds:

    config.toml      the effective TrainConfig (reusable with --config)
    metrics.jsonl    one JSON object per finished epoch
    checkpoint.pt    latest full training state (model, optimiser, scheduler, RNG, epoch)
    model.pt         the model with the best validation accuracy (rounded delays; read by delaynir.train.run_dir.Run)

``.pt`` files contain only tensors and plain Python values and are loaded with
``torch.load(weights_only=True)``: a checkpoint can never execute code.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import torch

from delaynir.common.outputs import atomic_path, write_text_atomic
from delaynir.common.text import read_text
from delaynir.errors import CheckpointError, reason

CONFIG, METRICS, CHECKPOINT, MODEL = "config.toml", "metrics.jsonl", "checkpoint.pt", "model.pt"
FORMAT_VERSION = 1


DIGEST = "sha256"  #: the key of a .pt payload's content digest


def save_pt(path: str | Path, payload: dict[str, Any]) -> None:
    """torch.save ``payload`` with its content digest, atomically (tensors and plain values only)."""
    buffer = io.BytesIO()  # serialised in memory: torch's writer reports a full disk as an iostream error
    torch.save({**payload, DIGEST: content_digest(payload)}, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getbuffer())


def content_digest(value: Any) -> str:
    """SHA-256 over every tensor's bytes and every plain value of ``value`` (dicts in key order)."""
    digest = hashlib.sha256()

    def feed(item: Any) -> None:
        if isinstance(item, dict):
            for key in sorted(item, key=str):
                digest.update(repr(key).encode())
                feed(item[key])
        elif isinstance(item, (list, tuple)):
            digest.update(b"[%d" % len(item))
            for element in item:
                feed(element)
        elif isinstance(item, torch.Tensor):
            t = item.detach().cpu().contiguous()
            digest.update(f"{t.dtype}{tuple(t.shape)}".encode())
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        else:
            digest.update(repr(item).encode())

    feed(value)
    return digest.hexdigest()


#: What a checkpoint.pt and a model.pt must hold (key: type), checked when they are loaded.
CHECKPOINT_KEYS: dict[str, type] = {
    "epoch": int,
    "best_val": float,
    "model": dict,
    "optimizer": dict,
    "scheduler": dict,
    "rng": torch.Tensor,
    "config": dict,
    "data": dict,
}
MODEL_KEYS: dict[str, type] = {
    "model": dict,
    "model_config": dict,
    "config": dict,
    "data": dict,
    "sigma": float,
    "epoch": int,
    "val_accuracy": float,
}
#: What the ``data`` entry of both must hold (how the run binned its training file).
DATA_KEYS: dict[str, type] = {
    "train_file": str,
    "dt": float,
    "n_steps": int,
    "pool": int,
    "n_channels": int,
    "n_inputs": int,
    "n_classes": int,
}
#: What a model.pt's ``weight_grid`` must hold when it is not None (the fine-tuning grid,
#: delaynir.numerics.quantize.WeightGrid).
WEIGHT_GRID_KEYS: dict[str, type] = {"q_min": int, "q_max": int, "step": int, "per_output_channel": bool}
#: What a model.pt's ``number_format`` must hold when it is not None (delaynir.numerics.number_formats.record_of).
NUMBER_FORMAT_KEYS: dict[str, type] = {"decay": str}


def torch_load_safely(path: Path, advice: str = "") -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU: tensors and plain values, never unpickled code.

    CheckpointError naming the file (and ``advice``, what to do) when it cannot be loaded that way.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or unsafe files
        raise CheckpointError(
            f"{path} cannot be loaded safely ({reason(exc)}); "
            f"it is corrupt, truncated, or contains objects other than tensors and plain values{advice}"
        ) from None


def load_pt(path: str | Path, keys: dict[str, type] | None = None) -> dict[str, Any]:
    """Load a .pt file written by ``save_pt`` without unpickling arbitrary objects.

    ``keys`` (CHECKPOINT_KEYS, MODEL_KEYS) are the entries it must hold, with their types; the
    ``data`` entry is checked against DATA_KEYS, a ``weight_grid`` (``number_format``) that is not None against
    WEIGHT_GRID_KEYS (NUMBER_FORMAT_KEYS).
    CheckpointError names the file and what is wrong.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist; is this a run directory written by `delaynir train`?")
    payload = torch_load_safely(path)
    if not isinstance(payload, dict) or payload.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} is not a delaynir checkpoint of format version {FORMAT_VERSION}; retrain or use a matching version"
        )
    digest = payload.pop(DIGEST, None)  # absent in files written before digests were added
    if digest is not None and digest != content_digest(payload):
        raise CheckpointError(
            f"{path} is damaged: its content does not match its SHA-256; restore it from a copy or retrain"
        )
    problems = _entry_problems(payload, keys or {}, "")
    if "data" in (keys or {}) and isinstance(payload.get("data"), dict):
        problems += _entry_problems(payload["data"], DATA_KEYS, "data.")
    for entry, entry_keys in (("weight_grid", WEIGHT_GRID_KEYS), ("number_format", NUMBER_FORMAT_KEYS)):
        value = payload.get(entry)
        if value is not None:
            problems += (
                _entry_problems(value, entry_keys, f"{entry}.")
                if isinstance(value, dict)
                else [f"{entry} is a {type(value).__name__}, expected dict or None"]
            )
    if problems:
        raise CheckpointError(
            f"{path} is incomplete or damaged: {'; '.join(problems)}; retrain the run "
            "(or resume it from an intact checkpoint)"
        )
    return payload


def _entry_problems(payload: dict[str, Any], keys: dict[str, type], prefix: str) -> list[str]:
    """Entries of ``payload`` missing from or of another type than ``keys`` says (int counts as float)."""
    problems = []
    for key, kind in keys.items():
        value = payload.get(key)
        kinds = (int, float) if kind is float else kind
        if value is None:
            problems.append(f"{prefix}{key} is missing")
        elif not isinstance(value, kinds) or (kind is not bool and isinstance(value, bool)):
            problems.append(f"{prefix}{key} is a {type(value).__name__}, expected {kind.__name__}")
    return problems


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / METRICS
    if not path.exists():
        return []
    rows = []
    for k, line in enumerate(read_text(path, CheckpointError, "metrics file").splitlines(), 1):
        try:
            row = json.loads(line) if line.strip() else None
        except ValueError as exc:
            raise CheckpointError(f"{path}: line {k} is not JSON ({exc}); the file is damaged") from None
        if row is not None and not (isinstance(row, dict) and isinstance(row.get("epoch"), int)):
            raise CheckpointError(f"{path}: line {k} is not an epoch's row (an object with an integer 'epoch')")
        rows += [row] if row is not None else []
    return rows


def write_metrics(run_dir: str | Path, rows: list[dict[str, Any]]) -> None:
    write_text_atomic(Path(run_dir) / METRICS, "".join(json.dumps(r) + "\n" for r in rows))
