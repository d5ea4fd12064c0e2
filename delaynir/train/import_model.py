"""Models trained elsewhere into a delaynir run directory: ``delaynir import-model CHECKPOINT --from SOURCE``.

Sources (PyTorch state dicts, read with ``torch.load(weights_only=True)``: tensors only, never pickled code):

- ``snn-delays``: Hammouamri et al.'s SNN-delays (github Thvnvtos/SNN-delays): DCLS ``Dcls1d`` layers
  (``weight`` (out, in, 1), ``P`` and ``SIG`` (1, out, in, 1), optional ``bias``), each hidden one followed
  by a BatchNorm1d, spikingjelly LIF neurons (``decay_input=False``, hard reset to 0) and a last LIF
  with an unreachable threshold whose membrane is the readout.
- ``paper``: Mészáros et al.'s fork (github mbalazs98/spatiotemporal): the same layers, its own
  ``Dcls1d`` (optionally with a fixed ``sign`` per synapse: weight · sign) and its own LIF and LI.

Layer by layer (D = ``max_delay`` taps, odd in both codes):

    delay      Dcls1d pads D − 1 steps on the left and correlates, so kernel tap k reads x[t − (D − 1 − k)];
               its Gaussian is centred on tap P + D // 2:   p = (D − 1) − (P + D // 2)   (p ∈ [0, D − 1])
    width      DCLS's Gaussian has width |SIG| + 0.27:   σ = |SIG| + 0.27 (one value per model)
    weight     w = weight[:, :, 0] (· sign for the paper's pruned layers); bias as is
    BatchNorm  as is (delaynir normalises the current over time and batch, as both codes do)
    LIF        snn-delays: H = (1 − 1/τ) V + I, spike when H ≥ θ, V = H (1 − S): delaynir's hard-reset LIF
               with β = 1 − 1/τ (equal spikes except when H equals θ exactly);
               paper: its LIF decides the spike at step t from the membrane before adding the input
               and adds the input of the step before (syn), so the current reaches the spike two steps
               later: delays + 2 (D + 2 taps). Not exact: its reset also drops the input of the step after a
               spike (delaynir keeps it), and the lag delays the BatchNorm's constant current too (delaynir
               adds it from step 0); tests/test_import_model.py measures 89 % identical spike entries.
    readout    snn-delays: the last LIF's membrane, v = (1 − 1/τ) v + I; paper: LI with a one-step lag
               (delays + 1): delaynir's leaky readout.

SNN-delays' ``right_padding`` ((D − 1) // 2 in its SHD configuration) lengthens every layer's output by
that many steps, zero-padding the layer before; delaynir keeps T steps, so import a model trained with
``right_padding = 0`` for identical outputs (the paper's RawHD configuration uses 0), or pass a longer
``n_steps``: the tails then differ. τ and θ are not in a checkpoint: pass the τ (in steps) and θ used.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from delaynir.common import outputs
from delaynir.errors import CheckpointError, ConfigError
from delaynir.nn.delay import DelayLinear
from delaynir.nn.model import DelaySNN, ModelConfig
from delaynir.train import checkpoints
from delaynir.train.config import dumps_toml, make_config

log = logging.getLogger(__name__)

SOURCES = ("snn-delays", "paper")
DCLS_SIGMA_OFFSET = 0.27  #: DCLS's Gaussian has width |SIG| + 0.27
DCLS_KEYS = {"weight", "P", "SIG"}
DCLS_OPTIONAL = {"bias", "sign"}
NORM_KEYS = {"weight", "bias", "running_mean", "running_var"}
NORM_OPTIONAL = {"num_batches_tracked"}
LAG = {"snn-delays": (0, 0), "paper": (2, 1)}  #: extra delay steps of (hidden layers, readout)
#: defaults of τ (steps) per source: SNN-delays divides its 10.05 ms by the 10 ms step; the paper's code uses 10.05
DEFAULT_TAU = {"snn-delays": 1.005, "paper": 10.05}
RESAVE = (
    "re-save it as a plain state dict of tensors: torch.save(model.state_dict(), PATH) in the environment "
    "that trained it"
)


@dataclass
class _Layer:
    """One delay layer read from a checkpoint, and the BatchNorm after it (None for none)."""

    name: str
    weight: torch.Tensor  #: (out, in), sign applied
    P: torch.Tensor  #: (out, in)
    sigma: torch.Tensor  #: (out, in): |SIG| + 0.27
    bias: torch.Tensor | None
    norm: dict[str, torch.Tensor] | None = None


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint, loaded without unpickling code; CheckpointError saying how to re-save it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    state = checkpoints.torch_load_safely(path, f": {RESAVE}")
    if isinstance(state, dict) and len(state) == 1 and isinstance(next(iter(state.values())), dict):
        state = next(iter(state.values()))  # {"state_dict": {...}} / {"model": {...}}
    if not isinstance(state, dict) or not state or not all(torch.is_tensor(v) for v in state.values()):
        raise CheckpointError(f"{path} is not a state dict of tensors: {RESAVE}")
    bad = {key: n for key, v in state.items() if v.is_floating_point() and (n := int((~torch.isfinite(v)).sum()))}
    if bad:
        listed = ", ".join(f"{key} ({n})" for key, n in list(bad.items())[:6])
        raise CheckpointError(
            f"{path}: non-finite values (NaN or inf) in {listed}{' …' if len(bad) > 6 else ''}; weights and delay "
            "positions must be finite to compile: take a checkpoint from before training diverged"
        )
    return state


def _natural(key: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", key)]


def parse_layers(state: dict[str, torch.Tensor], source: str, where: str = "checkpoint") -> list[_Layer]:
    """The checkpoint's delay layers in order, each with its BatchNorm; CheckpointError naming unexpected keys."""
    groups: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        prefix, _, name = key.rpartition(".")
        groups.setdefault(prefix, {})[name] = value
    layers: list[_Layer] = []
    unexpected = []
    for prefix in sorted(groups, key=_natural):
        params = groups[prefix]
        names = set(params)
        if names >= DCLS_KEYS and names <= DCLS_KEYS | DCLS_OPTIONAL:
            layers.append(_dcls_layer(prefix, params, source, where))
        elif names >= NORM_KEYS and names <= NORM_KEYS | NORM_OPTIONAL and layers and layers[-1].norm is None:
            layers[-1].norm = {k: params[k].double() for k in NORM_KEYS}
        else:
            unexpected += [f"{prefix}.{name}" for name in sorted(names)]
    if unexpected:
        raise CheckpointError(
            f"{where}: unexpected keys {', '.join(unexpected[:12])}{' …' if len(unexpected) > 12 else ''}; "
            f"delaynir imports {source} models of Dcls1d layers ({', '.join(sorted(DCLS_KEYS))}, optional "
            f"{', '.join(sorted(DCLS_OPTIONAL))}) each but the last followed by a BatchNorm1d (a parametric LIF's w, "
            "a synapse filter or a second BatchNorm are not supported)"
        )
    if len(layers) < 2:
        raise CheckpointError(
            f"{where}: found {len(layers)} Dcls1d layer(s); a model needs a hidden and a readout layer"
        )
    if layers[-1].norm is not None:
        raise CheckpointError(
            f"{where}: a BatchNorm follows the readout layer {layers[-1].name!r}; delaynir's readout has none"
        )
    if len({layer.norm is None for layer in layers[:-1]}) > 1:
        raise CheckpointError(
            f"{where}: some hidden layers have a BatchNorm and some do not; delaynir needs all or none"
        )
    for a, b in zip(layers, layers[1:]):
        if a.weight.shape[0] != b.weight.shape[1]:
            raise CheckpointError(
                f"{where}: layer {b.name!r} takes {b.weight.shape[1]} inputs but {a.name!r} has "
                f"{a.weight.shape[0]} outputs"
            )
    return layers


def _dcls_layer(prefix: str, params: dict[str, torch.Tensor], source: str, where: str) -> _Layer:
    weight, P, SIG = params["weight"].double(), params["P"].double(), params["SIG"].double()
    if weight.dim() != 3 or weight.shape[2] != 1 or P.shape != (1, *weight.shape) or SIG.shape != P.shape:
        raise CheckpointError(
            f"{where}: layer {prefix!r}: expected weight (out, in, 1) and P, SIG (1, out, in, 1) "
            f"(one kernel element per synapse, kernel_count = 1), found {tuple(weight.shape)}, "
            f"{tuple(P.shape)}, {tuple(SIG.shape)}"
        )
    if "sign" in params:
        if source != "paper":
            raise CheckpointError(
                f"{where}: layer {prefix!r} has a 'sign' (the paper's pruned Dcls1d); import it with --from paper"
            )
        weight = weight * params["sign"].double().reshape(weight.shape)
    bias = params["bias"].double() if "bias" in params else None
    return _Layer(prefix, weight[:, :, 0], P[0, :, :, 0], SIG[0, :, :, 0].abs() + DCLS_SIGMA_OFFSET, bias)


def build_model(
    layers: list[_Layer], source: str, *, max_delay: int, tau_steps: float, threshold: float, where: str = "checkpoint"
) -> tuple[DelaySNN, float]:
    """The delaynir model of ``layers`` (module docstring) and its Gaussian width σ (steps)."""
    hidden_lag, readout_lag = LAG[source]
    sigmas = torch.cat([layer.sigma.flatten() for layer in layers])
    if float(sigmas.max() - sigmas.min()) > 1e-6:
        raise CheckpointError(
            f"{where}: SIG differs between synapses ({float(sigmas.min()):.4g} … "
            f"{float(sigmas.max()):.4g}); delaynir anneals one σ for the whole model"
        )
    sigma = float(sigmas[0])
    has_bias = {layer.bias is not None for layer in layers}
    config = ModelConfig(
        n_inputs=layers[0].weight.shape[1],
        n_outputs=layers[-1].weight.shape[0],
        hidden=[layer.weight.shape[0] for layer in layers[:-1]],
        max_delay=max_delay + hidden_lag,
        delays="learned",
        tau_steps=tau_steps,
        threshold=threshold,
        reset="hard",
        batchnorm=layers[0].norm is not None,
        dropout=0.0,
        bias=has_bias == {True},
    )
    model = DelaySNN(config)
    with torch.no_grad():
        for k, (layer, delay) in enumerate(zip(layers, model.delay_layers())):
            assert isinstance(delay, DelayLinear), "the config above has dense delay layers"
            lag = readout_lag if k == len(layers) - 1 else hidden_lag
            p = (max_delay - 1) - (layer.P + max_delay // 2) + lag
            if p.min() < lag - 1e-6 or p.max() > max_delay - 1 + lag + 1e-6:
                raise CheckpointError(
                    f"{where}: layer {layer.name!r} has positions P in [{float(layer.P.min()):.3g}, "
                    f"{float(layer.P.max()):.3g}], outside ±{max_delay // 2} for "
                    f"max_delay = {max_delay}; pass the --max-delay the model was trained with"
                )
            delay.weight.copy_(layer.weight.float())
            delay.positions.copy_(p.float())
            if delay.bias is not None:
                delay.bias.copy_(layer.bias.float() if layer.bias is not None else torch.zeros(delay.out_features))
            if layer.norm is not None:
                norm = model.norms[k]
                for key, value in layer.norm.items():
                    getattr(norm, key).copy_(value.float())
    model.set_sigma(sigma)
    return model.eval(), sigma


def import_model(
    checkpoint: str | Path,
    source: str,
    out: str | Path,
    data: str | Path,
    *,
    max_delay: int = 25,
    tau_steps: float | None = None,
    threshold: float = 1.0,
    dt: float = 0.01,
    n_steps: int = 0,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write run directory ``out`` (config.toml, model.pt) holding the checkpoint's model; returns a summary.

    ``data`` is the data the model takes (a file or a directory's train.h5): its channels, classes and binning
    are recorded as a trained run's are, and compile compares on its validation split.
    """
    from delaynir.train.run_dir import data_file, input_encoding, model_payload, open_dataset

    if source not in SOURCES:
        raise ConfigError(f"unknown source {source!r}; choose one of {', '.join(SOURCES)}")
    tau_steps = DEFAULT_TAU[source] if tau_steps is None else tau_steps
    out = outputs.check_output(out, overwrite=True, directory=True)  # a directory, not a file nor under one
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise CheckpointError(
            f"run directory {out} already exists and is not empty; choose a new --out or pass --overwrite"
        )
    layers = parse_layers(read_state_dict(checkpoint), source, where=str(checkpoint))
    model, sigma = build_model(
        layers, source, max_delay=max_delay, tau_steps=tau_steps, threshold=threshold, where=str(checkpoint)
    )
    mc = model.config
    config = make_config(
        {
            "dt": dt,
            "n_steps": n_steps,
            "pool": 0,
            "hidden": list(mc.hidden),
            "max_delay": mc.max_delay,
            "tau_steps": tau_steps,
            "threshold": threshold,
            "batchnorm": mc.batchnorm,
            "dropout": 0.0,
            "sigma_final": sigma,
            "epochs": 1,
        }
    )
    path = data_file(data)
    dataset = open_dataset(path, config)
    if dataset.n_inputs != mc.n_inputs or dataset.n_classes > mc.n_outputs:
        raise CheckpointError(
            f"{path} gives {dataset.n_inputs} inputs and {dataset.n_classes} classes; the "
            f"checkpoint's model takes {mc.n_inputs} inputs and has {mc.n_outputs} outputs"
        )
    data_info = {
        "train_file": str(path.resolve()),
        "dt": dt,
        "n_steps": dataset.n_steps,
        "pool": dataset.pool,
        "n_channels": dataset.n_channels,
        "n_inputs": dataset.n_inputs,
        "n_classes": mc.n_outputs,
        **input_encoding(dataset).to_dict(),
    }
    payload = model_payload(model, config, data_info, sigma, epoch=0, val_accuracy=float("nan"))
    payload["imported_from"] = {
        "checkpoint": str(Path(checkpoint).resolve()),
        "source": source,
        "layers": [layer.name for layer in layers],
        "delay_lag": list(LAG[source]),
    }
    out.mkdir(parents=True, exist_ok=True)
    outputs.write_text_atomic(out / checkpoints.CONFIG, dumps_toml(config.to_dict()))
    checkpoints.save_pt(out / checkpoints.MODEL, payload)
    log.info("imported %s (%s, %d layers, σ = %.3g steps) into %s", checkpoint, source, len(layers), sigma, out)
    return {
        "run_dir": str(out),
        "source": source,
        "checkpoint": str(checkpoint),
        "layers": [
            {
                "name": layer.name,
                "inputs": layer.weight.shape[1],
                "outputs": layer.weight.shape[0],
                "batchnorm": layer.norm is not None,
            }
            for layer in layers
        ],
        "max_delay": mc.max_delay,
        "sigma": sigma,
        "tau_steps": tau_steps,
        "threshold": threshold,
        "data": str(path),
    }
