"""Run an ONNX file written by ``delaynir.converters.onnx_export`` in ONNX Runtime: ``load(path).run(x)``.

A step model is called once per step with its state fed back, a sequence model once, both from
zero state; the result is the reference simulator's SimulationResult. docs/onnx-format.md
documents the file's names, shapes and metadata.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch

from delaynir.converters.onnx_export import DOC, FORMATS, FRAME, META, Port
from delaynir.errors import ExportError, reason
from delaynir.ir.neuron_kinds import KINDS
from delaynir.reference.simulate import SimulationResult, predictions_of

__all__ = ["ExportedModel", "OnnxRunResult", "load", "load_onnx", "run_onnx"]

OnnxRunResult = SimulationResult  #: what run_onnx returns: the simulator's result type
READABLE_VERSIONS = ("1", "2")  #: format versions this runner reads (onnx_export.FORMAT_VERSION is written)


@dataclass
class ExportedModel:
    """An exported file opened in ONNX Runtime (``load_onnx``), with its documented interface."""

    path: Path
    session: ort.InferenceSession
    kind: str  #: "step" or "sequence"
    inputs: list[Port]
    outputs: list[Port]
    layers: list[dict[str, Any]]  #: name, neuron, reset, size of every layer, in execution order
    n_inputs: int

    def run(self, inputs: Any) -> SimulationResult:
        """``inputs`` (T, B, n_inputs) through the model, from zero state; see ``run_onnx``."""
        x = self._frames(inputs)
        try:
            if self.kind == "step":
                traces = self._steps(x)
            else:
                names = [p.name for p in self.outputs]
                traces = dict(zip(names, self.session.run(names, {FRAME: x})))
            spikes, membranes = {}, {}
            for layer in self.layers:
                name, kind = layer["name"], KINDS[layer["neuron"]]
                out = torch.from_numpy(traces[f"out.{name}"])
                spikes[name] = torch.zeros_like(out) if kind.readout else out
                membranes[name] = out if kind.relay else torch.from_numpy(traces[f"v.{name}"])
        except Exception as exc:  # onnxruntime's own types (an index out of range, ...), shapes unlike the metadata
            raise ExportError(f"{self.path}: the model fails to run ({reason(exc)}); the file is malformed") from None
        last = self.layers[-1]
        readout = KINDS[last["neuron"]].readout
        output = membranes[last["name"]] if readout else spikes[last["name"]]
        return SimulationResult(
            output=output, predictions=predictions_of(output, readout=readout), spikes=spikes, membranes=membranes
        )

    def _frames(self, inputs: Any) -> np.ndarray:
        x = torch.as_tensor(inputs).to(torch.float64).numpy()
        if x.ndim != 3 or x.shape[2] != self.n_inputs:
            raise ExportError(
                f"{self.path} takes inputs (T, B, {self.n_inputs}) (n_inputs = {self.n_inputs}); got {tuple(x.shape)}"
            )
        return np.ascontiguousarray(x)

    def _steps(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """out.<L> and v.<L> (T, B, n) from one session call per step, feeding next.* back as state."""
        T, B, _ = x.shape
        states = [p for p in self.inputs if p.role == "state"]
        state = {p.name: p.zeros(B) for p in states}
        names = [p.name for p in self.outputs]
        traces = {
            f"{kind}.{layer['name']}": np.zeros((T, B, layer["size"]))
            for layer in self.layers
            for kind in ("out", "v")
            if kind == "out" or not KINDS[layer["neuron"]].relay
        }
        for t in range(T):
            values = dict(zip(names, self.session.run(names, {FRAME: x[t], **state})))
            state = {p.name: values[p.next] for p in states}
            for layer in self.layers:
                name = layer["name"]
                traces[f"out.{name}"][t] = values[f"out.{name}"]
                if not KINDS[layer["neuron"]].relay:
                    traces[f"v.{name}"][t] = values[f"next.v.{name}"].T
        for layer in self.layers:  # state in units of the scale → membranes v = unit · u (as the simulator reports)
            if layer.get("unit") is not None and not KINDS[layer["neuron"]].relay:
                traces[f"v.{layer['name']}"] *= np.asarray(layer["unit"], dtype=np.float64)
        return traces


def load_onnx(path: str | os.PathLike) -> ExportedModel:
    """``path`` opened in ONNX Runtime (CPU); ExportError if it is unreadable or not exported by delaynir."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: no such file (expected an ONNX model written by export_onnx)")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        meta = session.get_modelmeta().custom_metadata_map
    except Exception as exc:  # onnxruntime raises its own types (InvalidProtobuf, Fail, ...), bad UTF-8 in metadata
        raise ExportError(
            f"{path}: not a loadable ONNX model; the file is malformed or truncated ({reason(exc)})"
        ) from None
    kind = next((k for k, name in FORMATS.items() if meta.get(META["format"]) == name), None)
    if kind is None:
        raise ExportError(
            f"{path}: metadata {META['format']!r} is {meta.get(META['format'])!r}, expected one of "
            f"{sorted(FORMATS.values())}; this ONNX file was not exported by delaynir's export_onnx"
        )
    if meta.get(META["version"]) not in READABLE_VERSIONS:
        raise ExportError(
            f"{path}: format version {meta.get(META['version'])!r}; this delaynir reads versions "
            f"{', '.join(READABLE_VERSIONS)}; re-export the graph with this delaynir"
        )
    try:
        io = json.loads(meta[META["io"]])
        inputs, outputs = (
            [Port(**{**p, "shape": tuple(p["shape"])}) for p in io[key]] for key in ("inputs", "outputs")
        )
        layers, n_inputs = json.loads(meta[META["layers"]]), int(meta[META["n_inputs"]])
    except (KeyError, TypeError, ValueError) as exc:
        raise ExportError(
            f"{path}: delaynir metadata missing or malformed ({type(exc).__name__}: {exc}); "
            f"re-export the graph (layout: {DOC})"
        ) from None
    found = ([i.name for i in session.get_inputs()], [o.name for o in session.get_outputs()])
    if found != ([p.name for p in inputs], [p.name for p in outputs]):
        raise ExportError(
            f"{path}: the model's inputs/outputs {found} do not match its {META['io']!r} metadata; "
            "the file was edited after export"
        )
    return ExportedModel(path, session, kind, inputs, outputs, layers, n_inputs)


load = load_onnx  #: the converters' common entry point, as norse and snnTorch: load(path).run(x)


def run_onnx(path: str | os.PathLike, inputs: Any) -> SimulationResult:
    """Run the exported model at ``path`` on ``inputs`` (T, B, n_inputs) in ONNX Runtime, from zero state.

    A step model is called once per step with its state fed back, a sequence model once. Returns
    delaynir.reference.simulate's SimulationResult with every layer's spikes and membranes recorded (spikes of
    li layers are zero; a relay's membrane is its input I). ExportError if the file is malformed,
    not exported by delaynir, or does not take ``inputs.shape[2]`` channels.
    """
    return load_onnx(path).run(inputs)
