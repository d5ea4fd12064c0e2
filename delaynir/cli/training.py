"""``delaynir train``, ``finetune`` and ``evaluate``."""

from __future__ import annotations

import json

from delaynir.cli.common import command, progress, show
from delaynir.errors import ConfigError
from delaynir.train.config import DELAY_MODES, DEVICES, PRUNE_METHODS, STRUCTURES, load_config, read_config_file
from delaynir.train.presets import PRESET_NOTES, PRESETS, preset_values, setting_sources


def _dry_run_text(preset: str | None, rows: list[dict], notes: list[str]) -> str:
    """The settings table of ``train --dry-run``: value, where it comes from and (for a preset's) why."""
    width = max(len(r["setting"]) for r in rows)
    shown = [json.dumps(r["value"]) for r in rows]
    vwidth = max(len(v) for v in shown)
    lines = [
        f"training settings{f' (preset {preset})' if preset else ''}; override any with a flag or --config FILE.toml:"
    ]
    lines += [
        f"  {r['setting']:<{width}}  {value:<{vwidth}}  {r['from']:<18} {r['note']}".rstrip()
        for r, value in zip(rows, shown)
    ]
    return "\n".join(lines + [f"note: {note}" for note in notes])


def _trained_text(summary: dict) -> str:
    final = summary["final"]
    text = (
        f"trained {summary['run_dir']} ({summary['delays']} delays, {summary['epochs']} epochs on "
        f"{summary['device']}): best validation accuracy {summary['best_val_accuracy']:.4f} "
        f"at epoch {summary['best_epoch']} (rounded delays)"
    )
    if final:
        text += f"; last epoch: loss {final['loss']:.4f}, training accuracy {final['train_accuracy']:.3f}"
        if "active_connections" in final:
            text += (
                f", active connections {final['active_connections']} of {final['connection_budget']} per sparse layer"
            )
    return text


def cmd_train(args) -> int:
    from delaynir.train.loop import train

    overrides = {
        "epochs": args.epochs,
        "delays": args.delays,
        "device": args.device,
        "seed": args.seed,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "max_delay": args.max_delay,
        "hidden": args.hidden,
        "sparsity": args.sparsity,
        "prune": args.prune,
        "structure": args.structure,
        "dale": args.dale or None,
    }
    config = load_config(args.config, overrides, base=preset_values(args.preset))
    if args.dry_run:
        file_values = read_config_file(args.config) if args.config else {}
        rows = setting_sources(config.to_dict(), args.preset, file_values, overrides)
        notes = PRESET_NOTES.get(args.preset or "", [])
        show(args, {"preset": args.preset, "settings": rows, "notes": notes}, _dry_run_text(args.preset, rows, notes))
        return 0
    if not (args.data and args.out):
        raise ConfigError("`delaynir train` needs --data and --out (or --dry-run to print the settings)")
    summary = train(config, args.data, args.out, resume=args.resume, progress=progress())
    show(args, summary, _trained_text(summary))
    return 0


def cmd_finetune(args) -> int:
    from delaynir.train.loop import finetune

    summary = finetune(args.run_dir, args.target, args.out, epochs=args.epochs, lr=args.lr, progress=progress())
    show(
        args,
        summary,
        f"fine-tuned {args.run_dir} for {args.target} into {summary['run_dir']}: best validation accuracy "
        f"{summary['best_val_accuracy']:.4f} with quantised weights and rounded delays; compile it with "
        f"`delaynir compile {summary['run_dir']} --target {args.target} --out FILE`",
    )
    return 0


def _evaluated_text(result: dict) -> str:
    line = f"{result['data']}: accuracy {result['accuracy']:.4f} with rounded integer delays"
    if "accuracy_gaussian" in result:
        line += f", {result['accuracy_gaussian']:.4f} with Gaussian kernels (σ = {result['sigma']:.2f} steps)"
    line += f" ({result['n']} samples)"
    if "unseen_speakers" in result:
        unseen = result["unseen_speakers"]
        line += (
            f"\n  speakers never seen in training ({', '.join(map(str, unseen['speakers']))}): accuracy "
            f"{unseen['accuracy']:.4f} ({unseen['n']} samples)"
        )
    return line


def cmd_evaluate(args) -> int:
    from delaynir.train.evaluate import evaluate_run

    result = evaluate_run(args.run_dir, args.data, device=args.device, batch_size=args.batch_size)
    show(args, result, _evaluated_text(result))
    return 0


def register(sub) -> None:
    t = command(sub, cmd_train, "train", help="train a delay SNN (settings: see README or --config)")
    t.add_argument("--data", help="SHD- or frames-layout .h5 file, or a directory with train.h5 (required to train)")
    t.add_argument("--out", help="run directory (must not exist, unless --resume; required to train)")
    t.add_argument(
        "--preset",
        choices=list(PRESETS),
        help="start from a named set of settings (rawhd-paper: the paper's code on RawHD); "
        "--config and flags override it",
    )
    t.add_argument(
        "--dry-run",
        action="store_true",
        help="print every setting (value, where it comes from, why) and exit without training",
    )
    t.add_argument("--config", help="TOML file setting any training option")
    t.add_argument("--epochs", type=int)
    t.add_argument("--delays", choices=DELAY_MODES)
    t.add_argument("--device", choices=DEVICES)
    t.add_argument("--seed", type=int)
    t.add_argument("--batch-size", type=int)
    t.add_argument("--lr", type=float)
    t.add_argument("--max-delay", type=int, help="delay taps D (delays 0 … D−1 steps)")
    t.add_argument("--hidden", type=int, nargs="+", help="hidden layer sizes, e.g. --hidden 256 256")
    t.add_argument(
        "--sparsity", type=float, help="fraction of candidate connections inactive per layer, e.g. 0.96875 (= 1 - 2^-5)"
    )
    t.add_argument(
        "--prune",
        choices=PRUNE_METHODS,
        help="dynamic pruning at a fixed budget: DEEP R removal with RigL or random regrowth "
        "(none: a fixed random mask)",
    )
    t.add_argument(
        "--structure",
        choices=STRUCTURES,
        help="candidates: (pre, post) pairs with a learned delay each, or (pre, post, delay) taps",
    )
    t.add_argument("--dale", action="store_true", help="one sign per presynaptic neuron (Dale's law; needs --prune)")
    t.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")

    f = command(
        sub, cmd_finetune, "finetune", help="quantisation-aware fine-tuning of a run for a target (new run directory)"
    )
    f.add_argument("run_dir")
    f.add_argument("--target", required=True, help="built-in target name or a .toml path")
    f.add_argument("--epochs", type=int, default=5)
    f.add_argument("--lr", type=float, help="learning rate (default: the run's / 10)")
    f.add_argument("--out", help="new run directory (default: RUN_DIR-finetune-TARGET)")

    e = command(sub, cmd_evaluate, "evaluate", help="accuracy of a run with rounded delays (and Gaussian kernels)")
    e.add_argument("run_dir")
    e.add_argument("--data", required=True, help="SHD-layout .h5 file, or a directory with test.h5")
    e.add_argument("--device", default="auto", choices=DEVICES)
    e.add_argument("--batch-size", type=int, default=256)
