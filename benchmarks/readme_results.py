"""Regenerate the Results section of README.md from fresh measurements.

Runs ``delaynir demo --json`` (seed 0, CPU unless --device says otherwise) in a temporary
directory, ``benchmarks/train_step.py --json``, ``benchmarks/delay_layer.py --json``,
``benchmarks/sparse_delay.py --json`` and ``benchmarks/simulate.py --json``, and reads a saved
``benchmarks/vs_dcls.py --json`` result (``--vs-dcls FILE``: it trains for most of an hour, so it
is run on its own), then rewrites the text between the ``<!-- results:start -->`` and
``<!-- results:end -->`` markers.

    python benchmarks/readme_results.py [--device cpu] [--skip-benchmark] [--vs-dcls FILE] [--dry-run]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

from delaynir.handoff.verify import worst_agreement

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- results:start -->", "<!-- results:end -->"


def _json_of(cmd: list[str]) -> dict:
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT).stdout
    return json.loads(out)


def demo_table(device: str) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        result = _json_of(
            [sys.executable, "-m", "delaynir", "demo", "--out", f"{tmp}/demo", "--device", device, "--json"]
        )
    lines = [
        f"`delaynir demo --device {device}` (synthetic timing task, seed 0, 20 epochs, 40 → 64 → 64 → 10; "
        "pruned: DEEP R + RigL over delay taps keeping 2 % of them):",
        "",
        "| delays | validation acc. | test acc. (rounded delays) | test acc. (Gaussian kernels) |",
        "|---|---|---|---|",
    ]
    for name, r in result["runs"].items():
        gauss = "–" if r["test_accuracy_gaussian"] is None else f"{r['test_accuracy_gaussian']:.3f}"
        lines.append(f"| {name} | {r['val_accuracy']:.3f} | {r['test_accuracy']:.3f} | {gauss} |")
    speech = result["speech"]
    if "skipped" not in speech:
        unseen = speech["unseen_speakers"]
        lines += [
            "",
            f"Spoken digits (the demo's small espeak-ng set: 4 training speakers, speaker "
            f"{', '.join(map(str, unseen['speakers']))} only in the test file), learned delays: validation "
            f"{speech['val_accuracy']:.3f}, test {speech['test_accuracy']:.3f}, unseen speaker "
            f"{unseen['accuracy']:.3f}.",
        ]
    graded = result["graded"]
    if "skipped" not in graded:
        agree = worst_agreement(graded["verification"]["simulators"]) == 1.0
        lines += [
            "",
            f"The same recordings as mel-filterbank frames (graded input), the paper's one-layer network "
            f"(`--preset rawhd-paper`, 3× the demo's epochs at batch 32): test {graded['test_accuracy']:.3f}, "
            f"unseen speaker {graded['unseen_speakers']['accuracy']:.3f}; compiled for `{result['compiled']['target']}` "
            f"with 8-bit input codes {graded['compiled']['test_accuracy']:.3f}; norse, snnTorch and ONNX Runtime "
            f"{'reproduce every spike and prediction' if agree else 'DIFFER from the reference'} on the "
            f"{graded['verification']['n']} test samples.",
        ]
    c = result["compiled"]
    v = c["validation"]
    spikes = ", ".join(f"{k} {x:.2%}" for k, x in v["spike_agreement"].items())
    lines += [
        "",
        f"Compiled for `{c['target']}` ({c['neurons']} neurons, {c['synapses']} synapses, delays up to "
        f"{c['max_delay']} steps) and run in the reference simulator: validation accuracy "
        f"{v['trained_accuracy']:.3f} trained → {v['compiled_accuracy']:.3f} compiled (same prediction on "
        f"{v['prediction_agreement']:.1%} of samples; identical spikes: {spikes}); test accuracy of the "
        f"compiled graph {c['test_accuracy']:.3f}.",
    ]
    chip = result["chip"]
    float_exact = worst_agreement(chip["verification"]["simulators"]) == 1.0
    lines += [
        "",
        f"Compiled for `{chip['target']}` and run in the chip's fixed-point arithmetic (`{chip['arithmetic']}`, "
        f"targets/loihi2/arithmetic.py): test accuracy {chip['test_accuracy']:.3f} against "
        f"{chip['trained_test_accuracy']:.3f} for the trained model ({-chip['cost_pp']:+.2f} pp); the NIR and ONNX "
        f"files compute the same graph in float64, and norse, snnTorch and ONNX Runtime "
        f"{'reproduce it exactly' if float_exact else 'DIFFER from it'}.",
    ]
    ver = result["verification"]
    lines += [
        "",
        f"Exported as NIR and ONNX and run on the {ver['n']} test samples by each simulator:",
        "",
        "| simulator | accuracy | same prediction as the reference | identical spikes |",
        "|---|---|---|---|",
        f"| reference | {ver['reference_accuracy']:.3f} | – | – |",
    ]
    for name, r in ver["simulators"].items():
        spikes = ", ".join(f"{k} {x:.2%}" for k, x in r["spike_agreement"].items())
        lines.append(f"| {name} | {r['accuracy']:.3f} | {r['prediction_agreement']:.1%} | {spikes} |")
    return "\n".join(lines)


def train_step_table(device: str) -> str:
    r = _json_of([sys.executable, "benchmarks/train_step.py", "--device", device, "--json"])
    s = r["shape"]
    lines = [
        f"`python benchmarks/train_step.py --device {device}` (one full training step — forward, loss, "
        f"backward, Adam — batch {s['B']}, {' → '.join(map(str, s['sizes']))}, T = {s['T']}, D = {s['D']}, "
        f"{s['density']:.0%} input spikes; SNN-delays on Dcls1d as the reference; interleaved, median of "
        f"{r['repeats']}):",
        "",
        "| σ | SNN-delays (Dcls1d) | delaynir | speed-up (targets: ≥ 3×, ≥ 5× at narrow σ) | hidden spike rates delaynir / reference |",
        "|---|---|---|---|---|",
    ]
    for row in r["rows"]:
        rates = " / ".join(
            "–".join(f"{x:.2f}" for x in row[k]) for k in ("delaynir_spike_rates", "reference_spike_rates")
        )
        lines.append(
            f"| {row['sigma']} ({row['delaynir_sigma_steps']:g} steps) | {row['reference_s'] * 1e3:.0f} ms | "
            f"{row['delaynir_s'] * 1e3:.0f} ms | {row['speedup']:.2f}× | {rates} |"
        )
    return "\n".join(lines)


def vs_dcls_table(path: Path) -> str:
    r = json.loads(path.read_text())
    st, sm = r["settings"], r["summary"]
    seeds = ", ".join(map(str, sm["seeds"]))
    overrides = "".join(f" --delaynir-set {k}={v}" for k, v in st.get("delaynir_overrides", {}).items())
    lines = [
        f"`python benchmarks/vs_dcls.py --data DIR --epochs {st['epochs']} --batch-size {st['batch_size']} "
        f"--seeds {' '.join(map(str, sm['seeds']))}{overrides}` on the spoken-digit set of `delaynir data speech` (seed 0: "
        f"{r['runs'][0]['data']['n_train']} training, {r['runs'][0]['data']['n_val']} validation, "
        f"{r['runs'][0]['data']['n_test']} test samples, {r['runs'][0]['data']['n_test_held_out_speakers']} of "
        f"them from the two unseen speakers), {st['device']}, medians over seeds {seeds}; delaynir with its "
        "defaults, SNN-delays as its code trains:",
        "",
        "| | test acc. (rounded delays) | unseen speakers | best validation | s per epoch | "
        "s to the reference's final validation acc. |",
        "|---|---|---|---|---|---|",
    ]
    for name, label in (("reference", "SNN-delays (Dcls1d)"), ("delaynir", "delaynir")):
        m = sm[name]
        tta = "–" if m["time_to_accuracy_seconds"] is None else f"{m['time_to_accuracy_seconds']:.0f}"
        lines.append(
            f"| {label} | {m['test_accuracy']:.3f} | {m['test_accuracy_held_out_speakers']:.3f} | "
            f"{m['best_val_accuracy']:.3f} | {m['epoch_seconds']:.1f} | {tta} "
            f"(reached in {m['reached_target']} of {len(sm['seeds'])}) |"
        )
    ratio = sm["time_to_accuracy_ratio"]
    reached = f"{sm['delaynir']['reached_target']} of {len(sm['seeds'])}"
    lines += [
        "",
        (
            f"delaynir reached the reference's final validation accuracy on none of the seeds ({reached}); "
            if ratio is None
            else f"Time to the reference's final validation accuracy, median over the seeds where delaynir reached "
            f"it ({reached}): {ratio:.1f}× faster; "
        )
        + f"per epoch {sm['epoch_time_ratio']:.1f}× faster.",
    ]
    return "\n".join(lines)


def benchmark_table(device: str) -> str:
    r = _json_of([sys.executable, "benchmarks/delay_layer.py", "--device", device, "--json"])
    s = r["shape"]
    lines = [
        f"`python benchmarks/delay_layer.py --device {device}` (forward + backward, batch {s['B']}, "
        f"{s['C_in']} → {s['C_out']}, T = {s['T']}, D = {s['D']}, {s['density']:.0%} input spikes, "
        f"median of {r['repeats']}, {r['allocator']} allocator):",
        "",
        "| σ (steps) | input gradient | Dcls1d | delaynir | speed-up | peak MB Dcls1d / delaynir |",
        "|---|---|---|---|---|---|",
    ]
    for row in r["rows"]:
        lines.append(
            f"| {row['sigma']} ({row['sigma_steps']:g}) | {'yes' if row['input_grad'] else 'no'} | "
            f"{row['dcls_s'] * 1e3:.1f} ms | {row['delaynir_s'] * 1e3:.1f} ms | {row['speedup']:.1f}× | "
            f"{row['dcls_peak_mb']:.0f} / {row['delaynir_peak_mb']:.0f} |"
        )
    return "\n".join(lines)


def sparse_table(device: str) -> str:
    r = _json_of([sys.executable, "benchmarks/sparse_delay.py", "--device", device, "--json"])
    lines = [
        f"`python benchmarks/sparse_delay.py --device {device}` (pruned layers against the dense layer above, "
        f"same shape, forward + backward, median of {r['repeats']}, fastest of {r['rounds']} rounds; "
        "taps structure, random signs):",
        "",
        "| sparsity | connections | first layer | speed-up | hidden layer (input gradient) | speed-up | "
        f"peak MB (first / hidden) | RigL step: all / pool of {r['regrow_pool']} per regrown |",
        "|---|---|---|---|---|---|---|---|",
    ]
    rows = {(x["structure"], x["sparsity"], x["input_grad"]): x for x in r["rows"]}
    for (structure, sparsity, input_grad), first in rows.items():
        if structure not in ("dense", "taps") or input_grad:
            continue
        hidden = rows[structure, sparsity, True]
        label, unit = ("dense layer", "pairs") if structure == "dense" else (f"{sparsity:g}", "taps")
        lines.append(
            f"| {label} | {first['connections']} {unit} | {first['median_s'] * 1e3:.1f} ms | "
            f"{first['speedup']:.1f}× | {hidden['median_s'] * 1e3:.1f} ms | {hidden['speedup']:.1f}× | "
            f"{first['peak_mb']:.0f} / {hidden['peak_mb']:.0f} | "
            + (
                f"{first['rewire_s'] * 1e3:.1f} / {first['rewire_pool_s'] * 1e3:.1f} ms |"
                if "rewire_s" in first
                else "– |"
            )
        )
    return "\n".join(lines)


def simulator_table() -> str:
    r = _json_of([sys.executable, "benchmarks/simulate.py", "--json"])
    return (
        f"`python benchmarks/simulate.py` ({r['network']}, {r['density']:.0%} connection density, D = {r['D']}, "
        f"T = {r['T']}, batch {r['batch']}, median of {r['repeats']}): reference simulator "
        f"{r['simulator_s'] * 1e3:.1f} ms; trained model in eval mode {r['model_eval_s'] * 1e3:.1f} ms with the "
        f"event-driven delay layer ({r['speedup']:.1f}× slower than the simulator) and "
        f"{r['dense_model_eval_s'] * 1e3:.1f} ms with the dense strategy ({r['speedup_vs_dense']:.1f}×); "
        f"same predictions: {r['same_predictions']}."
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--skip-benchmark", action="store_true", help="only rerun the demo")
    ap.add_argument("--vs-dcls", type=Path, help="a saved `benchmarks/vs_dcls.py --json` result to tabulate")
    ap.add_argument("--dry-run", action="store_true", help="print the section instead of writing README.md")
    args = ap.parse_args(argv)
    parts = [
        f"Measured {date.today().isoformat()} on {platform.machine()} ({args.device}).",
        "",
        demo_table(args.device),
    ]
    if args.vs_dcls:
        parts += ["", vs_dcls_table(args.vs_dcls)]
    if not args.skip_benchmark:
        parts += [
            "",
            train_step_table(args.device),
            "",
            benchmark_table(args.device),
            "",
            sparse_table(args.device),
            "",
            simulator_table(),
        ]
    section = "\n".join(parts)
    if args.dry_run:
        print(section)
        return 0
    readme = ROOT / "README.md"
    text = readme.read_text()
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{START}\n{section}\n{END}{tail}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
