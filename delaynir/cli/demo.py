"""``delaynir demo``: the whole pipeline on built-in data, and its summary."""

from __future__ import annotations

from typing import Any

from delaynir.cli.common import command, progress, show
from delaynir.train.config import DEVICES


def _chip_row(chip: dict | None) -> list[tuple[str, str]]:
    """The chip leg's row (none when no chip target is installed)."""
    if chip is None:
        return []
    return [
        (
            f"{chip['target']} ({chip['arithmetic']}), test accuracy / cost vs trained",
            f"{chip['test_accuracy']:.4f} / {chip['cost_pp']:+.2f} pp",
        )
    ]


def _speech_summary(speech: dict) -> str:
    if "skipped" in speech:
        return "skipped (espeak-ng not installed)"
    unseen = speech["unseen_speakers"]
    return f"{speech['test_accuracy']:.4f} / " + ("–" if unseen is None else f"{unseen['accuracy']:.4f}")


def _reproduces(verification) -> str:
    """'yes' when every simulator of a VerifyReport has identical spikes and predictions."""
    return "yes" if verification.worst_agreement == 1.0 else "NO"


def _graded_summary(graded: dict) -> str:
    if "skipped" in graded:
        return "skipped (espeak-ng not installed)"
    return (
        f"{graded['test_accuracy']:.4f} / {graded['compiled']['test_accuracy']:.4f} / "
        f"{_reproduces(graded['verification'])}"
    )


def _demo_text(result: dict[str, Any]) -> str:
    """The demo's figures: the runs, the compiled graph, its verification and a summary table."""
    lines = [
        f"\ndelaynir demo: synthetic timing task in {result['out']}/data",
        f"{'delays':<10} {'val acc':>8} {'test acc (rounded)':>19} {'test acc (gaussian)':>20}  run",
    ]
    for name, r in result["runs"].items():
        gauss = "-" if r["test_accuracy_gaussian"] is None else f"{r['test_accuracy_gaussian']:.4f}"
        lines.append(f"{name:<10} {r['val_accuracy']:>8.4f} {r['test_accuracy']:>19.4f} {gauss:>20}  {r['run_dir']}")
    c = result["compiled"]
    v = c["validation"]
    lines += [
        f"\ncompiled for {c['target']}: {c['graph']} ({c['neurons']} neurons, {c['synapses']} synapses, "
        f"max delay {c['max_delay']} steps)",
        f"  validation: trained {v['trained_accuracy']:.4f}, compiled {v['compiled_accuracy']:.4f} "
        f"(same prediction on {v['prediction_agreement']:.2%}); test accuracy of the compiled graph "
        f"{c['test_accuracy']:.4f}",
        f"\nexported to NIR: {result['nir']} and ONNX: {result['onnx']}; verification on the test set:",
        str(result["verification"]),
    ]
    b, rep = result["bundle"], result["report"]
    cl, fit = rep["clustering"], rep["hardware_fit"]
    rows = [
        ("learned delays, test accuracy", f"{result['runs']['learned']['test_accuracy']:.4f}"),
        ("no delays, test accuracy", f"{result['runs']['none']['test_accuracy']:.4f}"),
        ("pruned delay taps (2 % kept), test accuracy", f"{result['runs']['pruned']['test_accuracy']:.4f}"),
        ("spoken digits (espeak-ng), test accuracy / unseen speaker", _speech_summary(result["speech"])),
        (f"compiled ({c['target']}), test accuracy", f"{c['test_accuracy']:.4f}"),
        ("mel frames, graded (paper's net): test / compiled / exact", _graded_summary(result["graded"])),
        *_chip_row(result.get("chip")),
        ("exported files reproduce the reference", _reproduces(result["verification"])),
        (
            "E/I clustering (same-sign share vs shuffled)",
            f"{cl['same_sign_fraction']:.3f} vs {cl['shuffled_baseline']:.3f}",
        ),
        (f"fits {fit['target']} (before quantisation)", "yes" if fit["fits"] else "no"),
    ]
    lines.append("\nsummary")
    lines += [f"  {name:<58} {value}" for name, value in rows]
    lines.append(
        f"\nopen:\n  report  {rep['html']}\n  bundle  {b['out']}/README.md  (check it: delaynir bundle --check "
        f"{b['out']})"
    )
    return "\n".join(lines)


def cmd_demo(args) -> int:
    from delaynir.handoff.demo import run_demo

    result = run_demo(
        args.out,
        device=args.device,
        epochs=args.epochs,
        seed=args.seed,
        force=args.force,
        progress=progress(),
        target=args.target,
    )
    show(args, result, _demo_text(result))
    return 0


def register(sub) -> None:
    d = command(sub, cmd_demo, "demo", help="the whole pipeline on built-in synthetic data")
    d.add_argument("--out", default="delaynir-demo", help="output directory (default: ./delaynir-demo)")
    d.add_argument("--device", default="auto", choices=DEVICES)
    d.add_argument("--epochs", type=int, help="override the demo's epochs per run")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--force", action="store_true", help="replace an earlier demo directory")
    d.add_argument("--target", default="int8", help="target to compile for (default: int8)")
