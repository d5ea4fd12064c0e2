"""Accuracy vs sparsity: per-synapse DCLS delays vs delays learned as structure, on the synthetic task
or any data set.

    python examples/sparsity_sweep.py [OUT_DIR] [--k 1 3 5 7] [--epochs 20] [--seeds 0 1]
    python examples/sparsity_sweep.py OUT --data frames/ --preset rawhd-paper --dale \
        --arms dcls dcls-rigl random-rigl taps

At each connection density 2^-k of all-to-all (sparsity 1 − 2^-k, as in Mészáros et al. 2024),
five networks with the same number of connections in every hidden layer:

    dcls:       (pre, post) pairs under a fixed random mask, each with a weight and a DCLS-learned
                delay (structure pairs, prune none, sparsity 1 − 2^-k);
    dcls-rigl:  the same pairs rewired by DEEP R + RigL (structure pairs, prune deepr-rigl): separates
                the gain of rewiring from that of delays-as-structure;
    random-rigl: pairs rewired by DEEP R + RigL, each with a fixed random delay (delays fixed-random):
                the paper's structure learning with random delays, where only rewiring can choose them;
    taps:       (pre, post, delay) candidates pruned by DEEP R + RigL at a fixed budget, so that which
                taps survive are the delays (structure taps, prune deepr-rigl; a pair may keep several
                taps), sparsity 1 − 2^-k / D of its D× larger candidate set;
    taps-pool:  the same, with RigL ranking only 10 random dormant candidates per regrown connection
                (regrow_pool 10), whose scoring costs ∝ the pool instead of a dense weight gradient.

The readout stays dense in every arm; a dense DCLS network (k = 0) is the reference. Settings:
delaynir.handoff.demo.DEMO_SETTINGS, or a training preset (--preset, e.g. rawhd-paper: the paper's one-layer
network), with --epochs, one run per seed; --dale gives the pruned arms one sign per presynaptic neuron
(the paper's setting); --data takes a directory with train.h5 and test.h5 instead of the synthetic task. Test
accuracy is with rounded integer delays (the deployed model). Writes sweep.csv and sweep.json (one row per run) and
sweep.png (mean over seeds; needs matplotlib) to OUT_DIR; finished runs are reused.
"""

import argparse
import csv
import json
import logging
from pathlib import Path

from delaynir.data import SynthConfig, generate_synthetic
from delaynir.handoff.demo import DEMO_SETTINGS
from delaynir.train.config import make_config
from delaynir.train.evaluate import evaluate_run
from delaynir.train.loop import train
from delaynir.train.presets import preset_values

ARMS = {
    "dcls": lambda k, D: {"structure": "pairs", "prune": "none", "sparsity": 1 - 2.0**-k},
    "dcls-rigl": lambda k, D: {"structure": "pairs", "prune": "deepr-rigl", "sparsity": 1 - 2.0**-k},
    "random-rigl": lambda k, D: {
        "structure": "pairs",
        "prune": "deepr-rigl",
        "delays": "fixed-random",
        "sparsity": 1 - 2.0**-k,
    },
    "taps": lambda k, D: {"structure": "taps", "prune": "deepr-rigl", "sparsity": 1 - 2.0**-k / D},
    "taps-pool": lambda k, D: {
        "structure": "taps",
        "prune": "deepr-rigl",
        "sparsity": 1 - 2.0**-k / D,
        "regrow_pool": 10,
    },
}


LABELS = {
    "dcls": "DCLS delays, fixed random mask",
    "dcls-rigl": "DCLS delays, DEEP R + RigL",
    "random-rigl": "fixed random delays, DEEP R + RigL",
    "taps": "DEEP R + RigL over delay taps",
    "taps-pool": "same, RigL over a random pool (regrow_pool 10)",
}


def mean_accuracy(rows: list[dict], arm: str, k: int) -> float:
    accs = [r["test_accuracy"] for r in rows if r["arm"] == arm and r["k"] == k]
    return sum(accs) / len(accs)


def plot(rows: list[dict], ks: list[int], path: Path, arms: dict) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logging.warning("matplotlib is not installed: no plot (pip install matplotlib)")
        return False
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for arm in arms:
        label = LABELS[arm]
        ax.plot(ks, [mean_accuracy(rows, arm, k) for k in ks], "o-", label=label)
        seeds = [(r["k"], r["test_accuracy"]) for r in rows if r["arm"] == arm]
        ax.plot([p[0] for p in seeds], [p[1] for p in seeds], ".", color=ax.lines[-1].get_color(), alpha=0.5)
    ax.axhline(mean_accuracy(rows, "dense", 0), color="gray", ls="--", label="dense DCLS")
    ax.set_xlabel("k (connections = 2^-k of all-to-all; sparsity 1 - 2^-k)")
    ax.set_ylabel("test accuracy (rounded delays)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", nargs="?", default="sparsity-sweep")
    ap.add_argument("--k", type=int, nargs="+", default=[1, 3, 5, 7], help="densities 2^-k")
    ap.add_argument("--epochs", type=int, default=DEMO_SETTINGS["epochs"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--data", help="directory with train.h5 and test.h5 (default: the synthetic task in OUT/data)")
    ap.add_argument("--preset", help="training preset as base settings (default: the demo's settings)")
    ap.add_argument("--dale", action="store_true", help="one sign per presynaptic neuron in the pruned arms")
    ap.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS))
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = Path(args.out)
    data = Path(args.data) if args.data else out / "data"
    if not args.data and not (data / "test.h5").exists():
        generate_synthetic(data, SynthConfig(seed=0), overwrite=True)
    base = preset_values(args.preset) if args.preset else DEMO_SETTINGS
    D = base["max_delay"]
    arms = {arm: ARMS[arm] for arm in args.arms}
    rows = []
    runs = [("dense", 0, {})] + [(arm, k, settings(k, D)) for k in args.k for arm, settings in arms.items()]
    for seed in args.seeds:
        for arm, k, settings in runs:
            run_dir = out / "runs" / f"{arm}-k{k}-seed{seed}"
            dale = {"dale": True} if args.dale and settings.get("prune", "none") != "none" else {}
            config = make_config(dict(base, epochs=args.epochs, seed=seed, **settings, **dale))
            if not (run_dir / "model.pt").exists():
                train(config, data, run_dir)
            test = evaluate_run(run_dir, data / "test.h5")
            metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
            best = max(metrics, key=lambda m: m["val_accuracy"])
            rows.append(
                {
                    "arm": arm,
                    "k": k,
                    "seed": seed,
                    "sparsity": config.sparsity,
                    "structure": config.structure,
                    "connections_per_hidden_layer": metrics[-1].get("active_connections"),
                    "val_accuracy": best["val_accuracy"],
                    "test_accuracy": test["accuracy"],
                    "seconds": round(sum(m["seconds"] for m in metrics), 1),
                }
            )
            logging.info("%s k=%d seed %d: test accuracy %.3f", arm, k, seed, test["accuracy"])
    with open(out / "sweep.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (out / "sweep.json").write_text(json.dumps(rows, indent=2))
    plotted = plot(rows, args.k, out / "sweep.png", arms)
    print(f"test accuracy, mean of seeds {args.seeds}; dense DCLS: {mean_accuracy(rows, 'dense', 0):.3f}")
    print(f"{'k':>3} {'connections':>14} " + " ".join(f"{arm:>10}" for arm in arms))
    for k in args.k:
        conns = next(r["connections_per_hidden_layer"] for r in rows if r["k"] == k)
        print(f"{k:>3} {conns!s:>14} " + " ".join(f"{mean_accuracy(rows, arm, k):>10.3f}" for arm in arms))
    print(f"wrote {out / 'sweep.csv'}, {out / 'sweep.json'}" + (f", {out / 'sweep.png'}" if plotted else ""))


if __name__ == "__main__":
    main()
