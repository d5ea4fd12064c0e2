"""Figures of the run report (matplotlib, Agg backend) and the spatio-temporal clustering measure.

Every figure has a fixed size (``FIGSIZE`` inches at ``DPI``) and is saved without tight
cropping, so each PNG is exactly ``PIXELS`` pixels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from delaynir.ir.graph import INPUT, DelayGraph

FIGSIZE = (9.0, 5.0)
DPI = 100
PIXELS = (int(FIGSIZE[0] * DPI), int(FIGSIZE[1] * DPI))  #: (width, height) of every PNG
NEIGHBOURHOOD = (1, 2)  #: ± input channels, ± delay steps around a synapse for the clustering measure


def _figure(nrows: int = 1, ncols: int = 1, **kwargs):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(nrows, ncols, figsize=FIGSIZE, dpi=DPI, squeeze=False, **kwargs)


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=DPI, format="png")
    plt.close(fig)
    return path


def training_curves(metrics: list[dict[str, Any]], path: Path) -> Path:
    """Loss, and train / validation accuracy, per epoch (metrics.jsonl)."""
    fig, ax = _figure(1, 2)
    epochs = [m["epoch"] for m in metrics]
    for key in ("loss", "val_loss"):
        ax[0, 0].plot(epochs, [m.get(key, np.nan) for m in metrics], marker=".", label=key)
    for key in ("train_accuracy", "val_accuracy"):
        ax[0, 1].plot(epochs, [m.get(key, np.nan) for m in metrics], marker=".", label=key)
    ax[0, 0].set(xlabel="epoch", ylabel="loss", title="loss")
    ax[0, 1].set(xlabel="epoch", ylabel="accuracy", title="accuracy", ylim=(0, 1.02))
    for a in ax[0]:
        a.legend()
        a.grid(alpha=0.3)
    if not metrics:
        ax[0, 0].text(0.5, 0.5, "no metrics.jsonl", ha="center", transform=ax[0, 0].transAxes)
    fig.tight_layout()
    return _save(fig, path)


def spike_rasters(
    x: torch.Tensor,
    spikes: dict[str, torch.Tensor],
    labels: torch.Tensor,
    preds: torch.Tensor,
    path: Path,
    *,
    graded: bool = False,
) -> Path:
    """Input and hidden-layer rasters (rows: populations, columns: samples), time on x; ``graded`` input
    (real values or their codes) is drawn as an image of the values (channel × step) instead of dots."""
    rows = [(INPUT, x)] + list(spikes.items())
    n = x.shape[1]
    fig, ax = _figure(len(rows), n, sharex=True)
    for c in range(n):
        for r, (name, z) in enumerate(rows):
            a = ax[r, c]
            if graded and r == 0:
                a.imshow(
                    z[:, c].numpy().T,
                    aspect="auto",
                    origin="lower",
                    cmap="magma",
                    interpolation="nearest",
                    extent=(-0.5, z.shape[0] - 0.5, -0.5, z.shape[2] - 0.5),
                )
            else:
                t, j = np.nonzero(z[:, c].numpy())
                a.scatter(t, j, s=2, marker="|", c="k", linewidths=0.8)
            a.set_xlim(-0.5, z.shape[0] - 0.5)
            a.set_ylim(-0.5, z.shape[2] - 0.5)
            if c == 0:
                a.set_ylabel(name)
            if r == 0:
                a.set_title(f"sample {c}: label {int(labels[c])}, pred. {int(preds[c])}", fontsize=9)
            if r == len(rows) - 1:
                a.set_xlabel("step")
    fig.tight_layout()
    return _save(fig, path)


def _layers(graph: DelayGraph):
    """(layer name, delays, effective weights) of every layer's synapses, all projections together."""
    for layer in graph.layers:
        if layer.projections:
            yield (
                layer.name,
                np.concatenate([p.delay for p in layer.projections]),
                np.concatenate([p.effective_weight() for p in layer.projections]),
            )


def delay_histograms(graph: DelayGraph, path: Path) -> Path:
    layers = list(_layers(graph))
    fig, ax = _figure(1, len(layers))
    bins = np.arange(graph.max_delay + 2) - 0.5
    for a, (name, d, _) in zip(ax[0], layers):
        a.hist(d, bins=bins, color="tab:blue")
        a.set(title=f"{name}: {len(d)} synapses", xlabel="delay (steps)", ylabel="synapses")
    fig.tight_layout()
    return _save(fig, path)


def weight_vs_delay(graph: DelayGraph, path: Path, seed: int = 0) -> Path:
    layers = list(_layers(graph))
    rng = np.random.default_rng(seed)
    fig, ax = _figure(1, len(layers))
    for a, (name, d, w) in zip(ax[0], layers):
        a.scatter(d + rng.uniform(-0.3, 0.3, len(d)), w, s=3, alpha=0.4, c=np.where(w > 0, "tab:red", "tab:blue"))
        a.axhline(0, color="k", lw=0.5)
        a.set(title=name, xlabel="delay (steps, jittered)", ylabel="effective weight")
    fig.tight_layout()
    return _save(fig, path)


def synapse_grid(graph: DelayGraph) -> np.ndarray:
    """(post, input channel, delay) summed effective weights of the input projections into the first layer."""
    layer = graph.layers[0]
    grid = np.zeros((layer.size, graph.n_inputs, graph.max_delay + 1))
    for p in layer.projections:
        if p.source == INPUT:
            np.add.at(grid, (p.post, p.pre, p.delay), p.effective_weight())
    return grid


def centred_structure(grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over neurons of each neuron's weights by (channel offset from its |w|-weighted centre, delay).

    Returns (offsets, mean map (len(offsets), D)).
    """
    n, C, D = grid.shape
    offsets = np.arange(-(C - 1), C)
    out = np.zeros((len(offsets), D))
    mass = np.abs(grid).sum(axis=2)  # (n, C)
    for j in range(n):
        if mass[j].sum() == 0:
            continue
        centre = int(round(float((mass[j] * np.arange(C)).sum() / mass[j].sum())))
        out[np.arange(C) - centre + C - 1] += grid[j]
    return offsets, out / max(n, 1)


def _same_sign_fraction(grids: torch.Tensor) -> torch.Tensor:
    """Per grid (K, C, D): fraction of |w| mass whose neighbourhood sum has the same sign (non-empty ones only)."""
    dc, dd = NEIGHBOURHOOD
    kernel = torch.ones(1, 1, 2 * dc + 1, 2 * dd + 1, dtype=grids.dtype)
    kernel[0, 0, dc, dd] = 0
    around = F.conv2d(grids.unsqueeze(1), kernel, padding=(dc, dd)).squeeze(1)
    counted = (grids != 0) & (around != 0)
    same = counted & (torch.sign(around) == torch.sign(grids))
    mass = grids.abs()
    return (mass * same).sum((1, 2)) / (mass * counted).sum((1, 2)).clamp_min(1e-300)


def clustering(grid: np.ndarray, *, shuffles: int = 20, seed: int = 0) -> dict[str, float]:
    """How clustered excitation and inhibition are (the report defines it).

    Per neuron of the first layer, over its (input channel, delay) synapse grid: the share of
    |w| mass whose neighbourhood (±1 channel, ±2 steps, itself excluded) sums to the same sign
    as the synapse, among synapses with a non-zero neighbourhood; the whole layer's share is
    the |w|-weighted mean over neurons. Baseline: the same with the signs shuffled among each
    neuron's synapses (magnitudes and positions kept), mean of ``shuffles`` shuffles.
    """
    rng = np.random.default_rng(seed)
    g = torch.from_numpy(grid)
    weights = g.abs().sum((1, 2))
    observed = float((_same_sign_fraction(g) * weights).sum() / weights.sum().clamp_min(1e-300))
    baseline = []
    for _ in range(shuffles):
        shuffled = grid.copy()
        for j in range(len(grid)):
            nz = np.nonzero(grid[j])
            shuffled[j][nz] = np.abs(grid[j][nz]) * rng.permutation(np.sign(grid[j][nz]))
        fractions = _same_sign_fraction(torch.from_numpy(shuffled))
        baseline.append(float((fractions * weights).sum() / weights.sum().clamp_min(1e-300)))
    return {
        "same_sign_fraction": observed,
        "shuffled_baseline": float(np.mean(baseline)),
        "shuffled_std": float(np.std(baseline)),
        "excess": observed - float(np.mean(baseline)),
    }


def structure_plot(graph: DelayGraph, path: Path) -> Path:
    """The mean spatio-temporal receptive field of the first layer, diverging colours centred at 0."""
    from matplotlib.colors import TwoSlopeNorm

    offsets, mean = centred_structure(synapse_grid(graph))
    used = np.flatnonzero(np.abs(mean).sum(axis=1))  # offsets no neuron reaches stay off the plot
    if len(used):
        offsets, mean = offsets[used[0] : used[-1] + 1], mean[used[0] : used[-1] + 1]
    fig, ax = _figure()
    a = ax[0, 0]
    limit = float(np.abs(mean).max()) or 1.0
    image = a.imshow(
        mean.T,
        origin="lower",
        aspect="auto",
        cmap="RdBu_r",
        norm=TwoSlopeNorm(vcenter=0.0, vmin=-limit, vmax=limit),
        extent=(offsets[0] - 0.5, offsets[-1] + 0.5, -0.5, mean.shape[1] - 0.5),
    )
    fig.colorbar(image, ax=a, label="mean effective weight (red: excitatory, blue: inhibitory)")
    a.set(
        xlabel="input channel offset from the neuron's |w|-weighted centre",
        ylabel="delay (steps)",
        title=f"{graph.layers[0].name}: incoming weights by channel offset and delay, mean over neurons",
    )
    fig.tight_layout()
    return _save(fig, path)


def confusion_plot(matrix: np.ndarray, path: Path) -> Path:
    fig, ax = _figure()
    a = ax[0, 0]
    image = a.imshow(matrix, cmap="Blues")
    for (i, j), v in np.ndenumerate(matrix):
        if matrix.shape[0] <= 20:
            a.text(
                j,
                i,
                str(int(v)),
                ha="center",
                va="center",
                fontsize=8,
                color="white" if v > matrix.max() / 2 else "black",
            )
    fig.colorbar(image, ax=a, label="samples")
    ticks = np.arange(matrix.shape[0]) if matrix.shape[0] <= 20 else np.linspace(0, matrix.shape[0] - 1, 10, dtype=int)
    a.set_xticks(ticks)
    a.set_yticks(ticks)
    a.set(xlabel="predicted class", ylabel="true class", title="confusion matrix (test set)")
    fig.tight_layout()
    return _save(fig, path)
