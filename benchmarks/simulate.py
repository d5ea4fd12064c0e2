"""Reference simulator vs the trained PyTorch model in evaluation mode, on the same graph and inputs.

Network 140-256-256-20 (LIF, LIF, leaky readout), 10 % connection density (90 % of the
weights of a randomly initialised model set to zero), D = 25 delay taps, T = 100 steps,
batch 64, 5 % input spikes. The model runs in eval mode with rounded delays (float32,
our event-driven delay layer); the simulator runs the model compiled for the float
target (float64, per-synapse). Weights are scaled so hidden layers spike at a few percent.
A second anchor evaluates the same model with the dense strategy of the delay layer (D
shifted matrix products: the work of the anchor's dense temporal convolution, as DCLS
evaluates). Prints medians and both ratios.

    python benchmarks/simulate.py [--repeats 9] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from delaynir.compile.compiler import compile_model
from delaynir.hardware.profile import load_target
from delaynir.nn.allocator import tune_cpu_allocator
from delaynir.nn.model import DelaySNN, ModelConfig
from delaynir.reference.simulate import simulate

SIZES, DENSITY, D, T, B, INPUT_DENSITY = (140, 256, 256, 20), 0.10, 25, 100, 64, 0.05


def build_model(seed: int = 0) -> DelaySNN:
    torch.manual_seed(seed)
    model = DelaySNN(
        ModelConfig(
            n_inputs=SIZES[0], n_outputs=SIZES[-1], hidden=list(SIZES[1:-1]), max_delay=D, batchnorm=False, dropout=0.0
        )
    )
    with torch.no_grad():
        for layer in model.delays:
            layer.weight.mul_((torch.rand_like(layer.weight) < DENSITY).float() * 12.0)
    return model.eval()


def _median_time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    tune_cpu_allocator()
    model = build_model()
    graph, _ = compile_model(model, load_target("float"))
    x = (torch.rand(T, B, SIZES[0], generator=torch.Generator().manual_seed(1)) < INPUT_DENSITY).float()
    with torch.no_grad():
        model(x)
        rates = model.spike_rates
        t_model = _median_time(lambda: model(x), args.repeats)
        for layer in model.delays:
            layer.sparse_threshold = -1.0  # always the dense strategy
        t_dense = _median_time(lambda: model(x), args.repeats)
    t_sim = _median_time(lambda: simulate(graph, x), args.repeats)
    same = bool(torch.equal(simulate(graph, x).predictions, torch.softmax(model(x), -1).sum(0).argmax(1)))
    result = {
        "network": "-".join(map(str, SIZES)),
        "density": DENSITY,
        "D": D,
        "T": T,
        "batch": B,
        "synapses": graph.n_synapses,
        "hidden_spike_rates": rates,
        "model_eval_s": t_model,
        "dense_model_eval_s": t_dense,
        "simulator_s": t_sim,
        "speedup": t_model / t_sim,
        "speedup_vs_dense": t_dense / t_sim,
        "same_predictions": same,
        "repeats": args.repeats,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"{result['network']} at {DENSITY:.0%} density, D={D}, T={T}, batch {B}, hidden spike rates "
            f"{', '.join(f'{r:.3f}' for r in rates)}; median of {args.repeats}"
        )
        print(f"reference simulator {t_sim * 1e3:.1f} ms; same predictions as the model: {same}")
        print(
            f"PyTorch model (eval, rounded delays), event strategy: {t_model * 1e3:.1f} ms -> "
            f"simulator {result['speedup']:.1f}x faster"
        )
        print(
            f"PyTorch model (eval, rounded delays), dense strategy: {t_dense * 1e3:.1f} ms -> "
            f"simulator {result['speedup_vs_dense']:.1f}x faster"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
