"""ONNX Runtime (the exported step model, one call per step) vs the reference simulator, same graph and inputs.

Network 140-256-256-20 (LIF, LIF, leaky readout), 10 % connection density, D = 25 delay taps
(delays 0..24), built directly with numpy as a quantised graph: int8 weights in [-127, 127] with a
per-neuron scale, scaled so hidden layers spike at a few percent. T = 100 steps, batch 64, 5 %
input spikes. The step model is driven from Python with its state fed back (session created once,
not timed); the sequence model (Scan over time) runs the same step in one call. Prints medians,
steps/s, the ratio of the simulator's time to ONNX Runtime's (median over runs that take turns),
file sizes, and whether ONNX Runtime reproduces the simulator exactly (spikes, membranes, output,
predictions).

    python benchmarks/onnx_runtime.py [--repeats 7] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from delaynir.converters.onnx_export import OPSET, export_onnx
from delaynir.converters.onnxruntime import load_onnx
from delaynir.ir.graph import INPUT, DelayGraph, Layer, Projection
from delaynir.ir.graph_io import save_graph
from delaynir.reference.simulate import simulate

SIZES, DENSITY, D, T, B, INPUT_DENSITY = (140, 256, 256, 20), 0.10, 25, 100, 64, 0.05
WEIGHT_SCALE = (0.008, 0.004, 0.004)  #: mean per-neuron scale of each layer's int8 weights


def build_graph(seed: int = 0) -> DelayGraph:
    """The anchor-shaped quantised graph: LIF (β 0.9, θ 1, hard reset) hidden layers, li readout."""
    rng = np.random.default_rng(seed)
    layers, source = [], INPUT
    for k, (n_pre, n) in enumerate(zip(SIZES[:-1], SIZES[1:])):
        post, pre = np.nonzero(rng.random((n, n_pre)) < DENSITY)
        proj = Projection(
            source,
            pre,
            post,
            rng.integers(0, D, len(pre)),
            rng.integers(-127, 128, len(pre)),
            WEIGHT_SCALE[k] * rng.uniform(0.5, 1.5, n),
        )
        readout = k == len(SIZES) - 2
        name = "readout" if readout else f"hidden{k}"
        layers.append(
            Layer(
                name,
                n,
                "li" if readout else "lif",
                np.full(n, 0.9),
                np.full(n, np.inf) if readout else np.ones(n),
                np.zeros(n),
                [proj],
            )
        )
        source = name
    return DelayGraph(dt=0.01, n_inputs=SIZES[0], layers=layers, target="int8-bench")


def _interleaved_times(fns: dict, repeats: int) -> dict[str, list[float]]:
    """Seconds per call of each function, the functions taking turns (fairer on a shared, noisy machine)."""
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def _identical(a, b) -> bool:
    return (
        torch.equal(a.output, b.output)
        and torch.equal(a.predictions, b.predictions)
        and all(torch.equal(a.spikes[k], b.spikes[k]) and torch.equal(a.membranes[k], b.membranes[k]) for k in a.spikes)
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    graph = build_graph()
    x = (torch.rand(T, B, SIZES[0], generator=torch.Generator().manual_seed(1)) < INPUT_DENSITY).double()
    with tempfile.TemporaryDirectory() as tmp:
        h5 = save_graph(graph, Path(tmp) / "graph.h5")
        step = load_onnx(export_onnx(graph, Path(tmp) / "step.onnx"))
        sequence = load_onnx(export_onnx(graph, Path(tmp) / "sequence.onnx", sequence=True))
        sizes = {
            "graph_h5_bytes": h5.stat().st_size,
            "step_onnx_bytes": step.path.stat().st_size,
            "sequence_onnx_bytes": sequence.path.stat().st_size,
        }
        reference = simulate(graph, x, record=True)
        same_step, same_sequence = _identical(reference, step.run(x)), _identical(reference, sequence.run(x))
        times = _interleaved_times(
            {"sim": lambda: simulate(graph, x), "step": lambda: step.run(x), "sequence": lambda: sequence.run(x)},
            args.repeats,
        )
    t_sim, t_step, t_sequence = (statistics.median(times[k]) for k in ("sim", "step", "sequence"))
    ratio = {k: statistics.median(s / o for s, o in zip(times["sim"], times[k])) for k in ("step", "sequence")}
    rates = [float(reference.spikes[layer.name].mean()) for layer in graph.layers[:-1]]
    result = {
        "network": "-".join(map(str, SIZES)),
        "density": DENSITY,
        "D": D,
        "T": T,
        "batch": B,
        "synapses": graph.n_synapses,
        "hidden_spike_rates": rates,
        "opset": OPSET,
        **sizes,
        "simulator_s": t_sim,
        "onnx_step_s": t_step,
        "onnx_sequence_s": t_sequence,
        "onnx_step_steps_per_s": T / t_step,
        "onnx_sequence_steps_per_s": T / t_sequence,
        "simulator_steps_per_s": T / t_sim,
        "step_vs_simulator": ratio["step"],
        "sequence_vs_simulator": ratio["sequence"],
        "step_identical": same_step,
        "sequence_identical": same_sequence,
        "torch_threads": torch.get_num_threads(),
        "repeats": args.repeats,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"{result['network']} at {DENSITY:.0%} density, D={D}, T={T}, batch {B}, {graph.n_synapses} synapses, "
        f"hidden spike rates {', '.join(f'{r:.3f}' for r in rates)}; median of {args.repeats}"
    )
    print(
        f"files: DelayGraph .h5 {sizes['graph_h5_bytes']} B, step .onnx {sizes['step_onnx_bytes']} B "
        f"({sizes['step_onnx_bytes'] / sizes['graph_h5_bytes']:.2f}x), sequence .onnx "
        f"{sizes['sequence_onnx_bytes']} B"
    )
    print(f"reference simulator: {t_sim * 1e3:.1f} ms ({T / t_sim:.0f} steps/s)")
    print(
        f"ONNX Runtime step model, one call per step: {t_step * 1e3:.1f} ms ({T / t_step:.0f} steps/s) -> "
        f"{ratio['step']:.2f}x the simulator's speed; identical to the simulator: {same_step}"
    )
    print(
        f"ONNX Runtime sequence model (Scan), one call: {t_sequence * 1e3:.1f} ms ({T / t_sequence:.0f} steps/s) "
        f"-> {ratio['sequence']:.2f}x; identical to the simulator: {same_sequence}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
