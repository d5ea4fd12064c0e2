"""The training recipe's ablations: which default buys what, on a spike data set, at a given budget.

Each arm is ``delaynir train`` with the current defaults plus the arm's overrides, for the same
epochs, batch size and seeds; models are selected on the validation split of the training file
and scored on the test file with rounded delays, overall and on the speakers that never occur in
training. The arms retrace the changes from the previous defaults to the current ones:

    previous   lr 1e-3 one-cycle for weights and positions (positions 100×), dropout 0.4
    schedule   weights one-cycle to 5e-3, positions cosine from 0.1 (SNN-delays' schedules), dropout 0.4
    defaults   schedule + dropout 0.1: the current defaults

    python benchmarks/recipe.py --data DIR [--epochs 30] [--batch-size 64] [--seeds 0] [--arms ...] [--json]

``delaynir data speech --out DIR`` makes the spoken-digit set these figures were measured on.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

ARMS: dict[str, dict] = {
    "previous": {
        "lr": 1e-3,
        "position_lr_factor": 100.0,
        "lr_schedule": "one-cycle",
        "position_lr_schedule": "one-cycle",
        "dropout": 0.4,
    },
    "schedule": {"dropout": 0.4},
    "defaults": {},
}


def run_arm(name: str, data: Path, out: Path, *, epochs: int, batch_size: int, seed: int, device: str) -> dict:
    from delaynir.train.config import make_config
    from delaynir.train.evaluate import evaluate_run
    from delaynir.train.loop import train

    run_dir = out / f"{name}-seed{seed}"
    config = make_config(dict(ARMS[name], epochs=epochs, batch_size=batch_size, seed=seed, device=device))
    summary = train(config, data, run_dir)
    test = evaluate_run(run_dir, data, device=device)
    seconds = sum(m["seconds"] for m in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines()))
    return {
        "arm": name,
        "seed": seed,
        "best_epoch": summary["best_epoch"],
        "val_accuracy": summary["best_val_accuracy"],
        "test_accuracy": test["accuracy"],
        "unseen_accuracy": (test.get("unseen_speakers") or {}).get("accuracy"),
        "train_seconds": seconds,
        "run_dir": str(run_dir),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, type=Path, help="directory with train.h5 and test.h5")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    ap.add_argument("--out", type=Path, help="run directories (default: a temporary directory)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="delaynir-recipe-"))
    rows = [
        run_arm(a, args.data, out, epochs=args.epochs, batch_size=args.batch_size, seed=s, device=args.device)
        for s in args.seeds
        for a in args.arms
    ]
    summary = {
        a: {
            k: statistics.median(r[k] for r in rows if r["arm"] == a)
            for k in ("val_accuracy", "test_accuracy", "unseen_accuracy", "train_seconds")
            if all(r[k] is not None for r in rows if r["arm"] == a)
        }
        for a in args.arms
    }
    result = {
        "data": str(args.data),
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "seeds": args.seeds,
        "arms": {a: ARMS[a] for a in args.arms},
        "runs": rows,
        "median": summary,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"recipe ablations on {args.data}: {args.epochs} epochs, batch {args.batch_size}, seeds {args.seeds} "
        "(medians; test with rounded delays)"
    )
    print(f"{'arm':<10} {'val':>6} {'test':>6} {'unseen':>7} {'train s':>8}  overrides")
    for a, m in summary.items():
        unseen = f"{m['unseen_accuracy']:.3f}" if "unseen_accuracy" in m else "–"
        print(
            f"{a:<10} {m['val_accuracy']:>6.3f} {m['test_accuracy']:>6.3f} {unseen:>7} {m['train_seconds']:>8.0f}  "
            f"{ARMS[a] or '(none)'}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
