"""Run a netx file (``delaynir.targets.loihi2.netx``) in Intel Lava: ``load(path).run(x)``.

Lava (lava-nc 0.10, lava-dl 0.6) needs Python 3.10 and numpy < 2, so it lives in its own environment
(``targets/loihi2/build_lava_env.sh``) and runs in a subprocess: the runner script
``targets/loihi2/lava_run.py``, executed by that environment's python, loads the file with
``netx.hdf5.Network``, adds the recurrent and skip projections netx does not read (docs/netx-format.md)
and runs every sample in ``Loihi2SimCfg(select_tag="fixed_pt")`` (Lava's
bit-accurate CPU models of Loihi 2). The environment's python is ``$DELAYNIR_LAVA_PYTHON``, else
``bin/python`` of the build script's default environment (``$LAVA_ENV``, else
``~/.cache/delaynir/lava-env``).

Time alignment (``delaynir.ir.graph.layer_lags``): the T frames are followed by
max lag zero frames; layer L's steps lag(L) … lag(L) + T − 1 are the DelayGraph's steps 0 … T − 1,
and each layer's bias acts from its lag on. Input: binary spikes as spikes; spike counts above 1 and
graded codes as graded spikes (``input_message_bits``: the graph's input bits, else the width of the
largest count), whose payload multiplies the weight.
Units: Lava's v holds 2^6 per weight unit, so the reported membrane is v / 2^6 · s (s the layer's
scale), the reference simulator's in the loihi2-fixed arithmetic; the output is the li readout's
membrane (or the last layer's spikes).
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from delaynir.common.h5 import reading_hdf5
from delaynir.errors import DataFormatError, ExportError, ShapeError
from delaynir.export.tool_env import ToolEnvironment
from delaynir.ir.neuron_kinds import KINDS, predictions_of
from delaynir.reference.simulate import SimulationResult
from delaynir.targets.loihi2.arithmetic import STATE_SHIFT
from delaynir.targets.loihi2.netx import DOC, FORMAT_VERSION, READOUT_VTH

log = logging.getLogger(__name__)

RUNNER = Path(__file__).resolve().parent / "lava_run.py"  #: run by the Lava environment's python
ENVIRONMENT = ToolEnvironment(
    "lava", "Lava", "DELAYNIR_LAVA_PYTHON", "LAVA_ENV", "lava-env", "targets/loihi2/build_lava_env.sh --profile netx"
)


def lava_python() -> Path:
    """The Lava environment's python; ExecutorUnavailable saying how to build it when there is none."""
    return ENVIRONMENT.python()


@dataclass
class LavaModel:
    """A netx file written by delaynir, ready to run in Lava; ``layers`` name, kind, lag, scale per layer."""

    path: Path
    n_inputs: int
    input_message_bits: int
    max_lag: int
    layers: list[dict[str, Any]]

    def run(self, inputs) -> SimulationResult:
        """``inputs`` (T, B, n_inputs) through Lava from zero state; every layer recorded (module docstring)."""
        x = np.asarray(torch.as_tensor(inputs).to(torch.float64))
        if x.ndim != 3 or x.shape[2] != self.n_inputs:
            raise ShapeError(f"{self.path} takes inputs (T, B, {self.n_inputs}); got {x.shape}")
        if not np.all(x == np.round(x)) or (not self.input_message_bits and np.any(x < 0)):
            raise DataFormatError(
                f"{self.path} takes {'integer codes' if self.input_message_bits else 'spike counts'} "
                "as input; encode the input as the DelayGraph's input spec says"
            )
        T, B, _ = x.shape
        padded = np.concatenate([x, np.zeros((self.max_lag, B, self.n_inputs))]).astype(np.int32)
        binary = np.all((x == 0) | (x == 1))  # else spike counts go as graded spikes (payload = count)
        bits = self.input_message_bits or (0 if binary else int(np.abs(padded).max()).bit_length())
        traces = _run_lava(self.path, padded, bits, [la["lag"] for la in self.layers])
        spikes, membranes = {}, {}
        for k, layer in enumerate(self.layers, start=1):
            window = slice(layer["lag"], layer["lag"] + T)
            v, s = traces[f"v{k}"][window], traces[f"s{k}"][window]
            if KINDS[layer["kind"]].readout and np.any(s):
                raise ExportError(
                    f"{self.path}: the readout {layer['name']!r} crossed its unreachable threshold "
                    f"(|v| above {READOUT_VTH} weight units), so Lava reset it; its membrane is no "
                    "longer the DelayGraph's. Use smaller readout weights or fewer steps"
                )
            spikes[layer["name"]] = torch.from_numpy(s.astype(np.float64))
            membranes[layer["name"]] = torch.from_numpy(v / 2**STATE_SHIFT * layer["scale"])
        last = self.layers[-1]
        readout = KINDS[last["kind"]].readout
        output = membranes[last["name"]] if readout else spikes[last["name"]]
        return SimulationResult(
            output=output, predictions=predictions_of(output, readout=readout), spikes=spikes, membranes=membranes
        )


def _run_lava(path: Path, x: np.ndarray, input_message_bits: int, lags: list[int]) -> dict[str, np.ndarray]:
    """lava_run.py on ``x`` (S, B, n) in the Lava environment, each layer's bias acting from its lag on;
    its recorded traces."""
    with tempfile.TemporaryDirectory(prefix="delaynir-lava-") as tmp:
        inp, out = Path(tmp) / "input.npz", Path(tmp) / "output.npz"
        np.savez(inp, x=x, input_message_bits=np.int64(input_message_bits), bias_from=np.asarray(lags, np.int64))
        log.info("running %s in Lava: %d samples of %d steps", path, x.shape[1], x.shape[0])
        ENVIRONMENT.run(RUNNER, [str(path), str(inp), str(out)], "run the netx file of this graph")
        with np.load(out) as data:
            return {key: data[key] for key in data.files}


def load(path: str | os.PathLike) -> LavaModel:
    """The netx file at ``path`` (written by ``export_netx``; ExportError otherwise) as a runnable Lava model."""
    path = Path(path)
    with reading_hdf5(path, ExportError, f"a netx file written by delaynir ({DOC})") as f:
        meta = f.get("delaynir")
        if meta is None or meta.attrs.get("format_version") not in range(1, FORMAT_VERSION + 1):
            raise ExportError(
                f"{path}: not a netx file written by delaynir (no 'delaynir' group of format version "
                f"1..{FORMAT_VERSION}); export it with `delaynir export --format netx` ({DOC})"
            )
        layers = [dict(meta[f"layers/{k}"].attrs) for k in range(1, len(meta["layers"]) + 1)]
        layers = [
            {"name": str(la["name"]), "kind": str(la["kind"]), "lag": int(la["lag"]), "scale": float(la["scale"])}
            for la in layers
        ]
        unknown = [la["kind"] for la in layers if la["kind"] not in KINDS]
        if unknown:
            raise ExportError(f"{path}: layers of unknown kind {unknown} (kinds: {', '.join(KINDS)}); re-export it")
        model = LavaModel(
            path, int(meta.attrs["n_inputs"]), int(meta.attrs["input_message_bits"]), int(meta.attrs["max_lag"]), layers
        )
    lava_python()  # after the file: a damaged file is named even where Lava is not installed
    return model
