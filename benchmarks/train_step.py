"""One full training step of delaynir against the SNN-delays reference (DCLS), side by side in one run.

Shape (anchor, docs/design.md): batch 64, T = 100 steps, 140 → 256 → 256 → 20, D = 25 taps, binary
input spikes at 5 % density. A step is what a training loop does per batch: forward, the
summed-softmax cross-entropy, zero_grad, backward, the Adam step(s) and the position clamp.

* delaynir: ``DelaySNN`` built by ``delaynir.train.loop.build_model`` from the default training
  configuration (BatchNorm, dropout, LIF, leaky readout), Adam over the parameter groups as
  ``delaynir.train.loop`` builds them.
* reference: ``SnnDelaysRef`` of ``benchmarks/vs_dcls.py`` (SNN-delays on ``Dcls1d``, with its
  two Adam optimisers and causal padding; its τ and its 12 extra output steps per layer).

σ is measured early in training (wide: delaynir σ = D/2, the reference's SIG = 12, width 12.27)
and late (narrow: σ = 0.5 for both, SIG = 0.23). The two models alternate step by step in the
same process with the same thread count, so machine load hits both alike; the figure is the
ratio of the medians (> 1: delaynir is faster). Hidden spike rates of both are reported: the
reference's cost does not depend on them, delaynir's direct strategies do.

    python benchmarks/train_step.py [--device cpu|cuda] [--repeats 15] [--amp] [--json]

Needs the ``bench`` extra (pip install -e ".[bench]") for DCLS.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vs_dcls import SNN_DELAYS, SnnDelaysRef, summed_softmax_loss

T, B, C_IN, HIDDEN, C_OUT, D, DENSITY = 100, 64, 140, 256, 20, 25, 0.05
SIGMAS = {"wide": (D / 2, float(SNN_DELAYS["sig_init"])), "narrow": (0.5, SNN_DELAYS["sig_final"])}


def _delaynir_step(sigma: float, device: torch.device, amp: bool):
    from delaynir.nn.model import readout_loss
    from delaynir.train.config import make_config
    from delaynir.train.loop import _autocast, build_model

    config = make_config({"hidden": [HIDDEN, HIDDEN], "max_delay": D})
    model = build_model(config, C_IN, C_OUT).to(device).train()
    model.set_sigma(sigma)
    weights, positions = model.parameter_groups()
    opt = torch.optim.Adam(
        [
            {"params": weights, "lr": config.lr, "weight_decay": config.weight_decay},
            {"params": positions, "lr": config.lr * config.position_lr_factor},
        ]
    )

    def step(x, y):
        with _autocast(device, amp):
            out = model(x)
            loss = readout_loss(out.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        model.clamp_positions_()
        return model.spike_rates

    return step


def _reference_step(sig: float, device: torch.device, amp: bool):
    model = SnnDelaysRef(C_IN, C_OUT, seed=0).to(device).train()
    with torch.no_grad():
        for layer in model.dcls:
            layer.SIG.fill_(sig)
    weights, norms, positions = model.parameter_groups()
    opt_w = torch.optim.Adam(
        [
            {"params": weights, "lr": SNN_DELAYS["lr_w"], "weight_decay": SNN_DELAYS["weight_decay"]},
            {"params": norms, "lr": SNN_DELAYS["lr_w"], "weight_decay": 0.0},
        ]
    )
    opt_p = torch.optim.Adam(positions, lr=SNN_DELAYS["lr_pos"])
    step_amp = device.type == "cuda" and amp

    def step(x, y):
        with torch.autocast("cuda", dtype=torch.bfloat16) if step_amp else contextlib.nullcontext():
            out = model(x)
            loss, _ = summed_softmax_loss(out.float(), y)
        opt_w.zero_grad(set_to_none=True)
        opt_p.zero_grad(set_to_none=True)
        loss.backward()
        opt_w.step()
        opt_p.step()
        model.clamp_parameters()

    return step, model


def _spike_rates_of_reference(model: SnnDelaysRef, x: torch.Tensor) -> list[float]:
    """Hidden spike rates of the reference on ``x`` (a forward pass without gradients)."""
    import vs_dcls

    rates = []
    original = vs_dcls.ref_lif

    def recording(*args, **kwargs):
        s = original(*args, **kwargs)
        rates.append(float(s.mean()))
        return s

    vs_dcls.ref_lif = recording
    try:
        with torch.no_grad():
            model(x)
    finally:
        vs_dcls.ref_lif = original
    return rates


def measure(width: str, device: torch.device, repeats: int, amp: bool) -> dict:
    sigma, sig = SIGMAS[width]
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(T, B, C_IN, generator=g) < DENSITY).float().to(device)
    y = torch.randint(0, C_OUT, (B,), generator=g).to(device)
    torch.manual_seed(0)
    ours = _delaynir_step(sigma, device, amp)
    ref, ref_model = _reference_step(sig, device, amp)

    def timed(step):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        out = step(x, y)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - t0, out

    for _ in range(3):  # warm-up: allocator, compiled kernels, BLAS threads
        timed(ours)
        timed(ref)
    t_ours, t_ref = [], []
    rates = []
    for _ in range(repeats):
        dt, rates = timed(ours)
        t_ours.append(dt)
        t_ref.append(timed(ref)[0])
    ours_s, ref_s = statistics.median(t_ours), statistics.median(t_ref)
    return {
        "sigma": width,
        "delaynir_sigma_steps": sigma,
        "reference_sig": sig,
        "delaynir_s": ours_s,
        "reference_s": ref_s,
        "speedup": ref_s / ours_s,
        "delaynir_spike_rates": rates,
        "reference_spike_rates": _spike_rates_of_reference(ref_model, x),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--amp", action="store_true", help="bfloat16 autocast on CUDA for both (ignored on CPU)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    args = ap.parse_args(argv)
    from delaynir.nn.allocator import tune_cpu_allocator

    tune_cpu_allocator()  # as the delaynir command does; the reference runs in the same process
    device = torch.device(args.device)
    rows = [measure(width, device, args.repeats, args.amp) for width in SIGMAS]
    result = {
        "shape": {"T": T, "B": B, "sizes": [C_IN, HIDDEN, HIDDEN, C_OUT], "D": D, "density": DENSITY},
        "device": args.device,
        "amp": args.amp and args.device == "cuda",
        "repeats": args.repeats,
        "threads": torch.get_num_threads(),
        "rows": rows,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"full training step vs SNN-delays (Dcls1d), {args.device}, B={B} {C_IN}-{HIDDEN}-{HIDDEN}-{C_OUT} "
        f"T={T} D={D} input density {DENSITY}, median of {args.repeats}, interleaved"
    )
    print(
        f"{'sigma':>7} {'reference s':>12} {'delaynir s':>11} {'speedup':>8}  hidden spike rates (delaynir / reference)"
    )
    for r in rows:
        rates = "/".join(f"{v:.3f}" for v in r["delaynir_spike_rates"])
        ref_rates = "/".join(f"{v:.3f}" for v in r["reference_spike_rates"])
        print(
            f"{r['sigma']:>7} {r['reference_s']:>12.4f} {r['delaynir_s']:>11.4f} {r['speedup']:>7.1f}x  "
            f"{rates} / {ref_rates}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
