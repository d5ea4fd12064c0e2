"""Delay layer speed and memory against DCLS's Dcls1d, at the anchor shape, in one run.

Shape (anchor, docs/design.md): batch 64, 140 → 256 channels, T = 100 steps, D = 25 taps,
binary input spikes at 5 % density. Both layers compute the same causal Gaussian-kernel
delayed sum; each timed call is forward + backward to weights and delay positions
(first layer: the input needs no gradient), optionally also to the input (hidden layers).

σ is measured early in training (wide, σ = D/2) and late (narrow, σ = 0.5). Every
variant runs in its own subprocess so peak memory is its own: on CPU the peak resident
set size growth over the set-up (VmHWM, reset through /proc/self/clear_refs), on CUDA
``torch.cuda.max_memory_allocated``. Times are medians over --repeats calls after warm-up.

    python benchmarks/delay_layer.py [--device cpu|cuda] [--repeats 15] [--json]

Both implementations run with the same process settings: glibc's allocator tuned as the
``delaynir`` command tunes it (``delaynir.nn.allocator``), or left at its defaults with
--default-allocator.

Needs the ``bench`` extra (pip install -e ".[bench]") for DCLS.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from _measure import time_and_peak

T, B, C_IN, C_OUT, D, DENSITY = 100, 64, 140, 256, 25, 0.05


def _measure(impl: str, sigma: float, input_grad: bool, device: str, repeats: int, tune: bool) -> dict:
    import torch

    if tune:
        from delaynir.nn.allocator import tune_cpu_allocator

        tune_cpu_allocator()

    torch.manual_seed(0)
    x = (torch.rand(T, B, C_IN, device=device) < DENSITY).float()
    if impl == "delaynir":
        from delaynir.nn import DelayLinear

        layer = DelayLinear(C_IN, C_OUT, D, bias=False, sigma=sigma).to(device).train()
        inp = x

        def step():
            x_ = inp.detach().requires_grad_(input_grad)
            layer(x_).sum().backward()

    else:
        from DCLS.construct.modules import Dcls1d

        layer = Dcls1d(C_IN, C_OUT, kernel_count=1, dilated_kernel_size=D, bias=False, version="gauss").to(device)
        with torch.no_grad():  # Dcls uses |SIG| + 0.27 as the width
            layer.SIG.fill_(max(sigma - 0.27, 0.0))
        layer.SIG.requires_grad_(False)
        inp = torch.nn.functional.pad(x.permute(1, 2, 0), (D - 1, 0))  # (B, C, T + D − 1), causal

        def step():
            x_ = inp.detach().requires_grad_(input_grad)
            layer(x_).sum().backward()

    return time_and_peak(step, lambda: layer.zero_grad(set_to_none=True), device, repeats)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--default-allocator", action="store_true", help="leave glibc's allocator settings alone")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--_child", nargs=3, metavar=("IMPL", "SIGMA", "INPUT_GRAD"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._child:
        impl, sigma, input_grad = args._child
        result = _measure(impl, float(sigma), input_grad == "1", args.device, args.repeats, not args.default_allocator)
        print(json.dumps(result))
        return 0
    rows = []
    for input_grad in (False, True):
        for label, sigma in (("early", D / 2), ("late", 0.5)):
            res = {}
            for impl in ("dcls", "delaynir"):
                cmd = [sys.executable, __file__, "--device", args.device, "--repeats", str(args.repeats)]
                cmd += ["--default-allocator"] if args.default_allocator else []
                out = subprocess.run(
                    cmd + ["--_child", impl, str(sigma), str(int(input_grad))],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
                res[impl] = json.loads(out.strip().splitlines()[-1])
            rows.append(
                {
                    "sigma": label,
                    "sigma_steps": sigma,
                    "input_grad": input_grad,
                    "dcls_s": res["dcls"]["median_s"],
                    "delaynir_s": res["delaynir"]["median_s"],
                    "speedup": res["dcls"]["median_s"] / res["delaynir"]["median_s"],
                    "dcls_peak_mb": res["dcls"]["peak_mb"],
                    "delaynir_peak_mb": res["delaynir"]["peak_mb"],
                }
            )
    result = {
        "shape": {"T": T, "B": B, "C_in": C_IN, "C_out": C_OUT, "D": D, "density": DENSITY},
        "device": args.device,
        "repeats": args.repeats,
        "allocator": "default" if args.default_allocator else "tuned",
        "rows": rows,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"delay layer vs Dcls1d, {args.device}, B={B} {C_IN}->{C_OUT} T={T} D={D} density={DENSITY}, "
        f"median of {args.repeats}, {result['allocator']} allocator"
    )
    print(
        f"{'sigma':>12} {'input grad':>10} {'Dcls1d s':>9} {'ours s':>8} {'speedup':>8} {'Dcls MB':>8} {'ours MB':>8}"
    )
    for r in rows:
        print(
            f"{r['sigma']:>6} {r['sigma_steps']:>5.2f} {r['input_grad']!s:>10} {r['dcls_s']:>9.4f} "
            f"{r['delaynir_s']:>8.4f} {r['speedup']:>7.1f}x {r['dcls_peak_mb']:>8.0f} {r['delaynir_peak_mb']:>8.0f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
