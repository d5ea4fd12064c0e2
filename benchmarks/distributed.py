"""Data-parallel training throughput: samples per second for 1, 2, … processes, and scaling efficiency.

Each configuration is a real ``torchrun --nproc_per_node=N`` launch of ``delaynir.train.loop.train`` on a
synthetic task (this script re-runs itself as the worker), CPU processes with gloo (threads split
evenly over the cores) and, where CUDA is available, 1 … #GPUs processes with NCCL. The global batch
is the same for every N (docs/distributed.md), so every N does the same work per epoch. Throughput is
training samples divided by rank 0's fastest epoch time after the first (validation included);
efficiency = throughput(N) / (N · throughput(1)).

    python benchmarks/distributed.py [--json] [--epochs 3] [--n-train 2048] [--batch-size 64] [--hidden 256 256]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def _worker(args) -> None:
    from delaynir.train.config import make_config
    from delaynir.train.loop import train

    config = make_config(
        {
            "hidden": args.hidden,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "max_delay": 25,
            "n_steps": 50,
            "val_fraction": 0.1,
            "device": args.device,
        }
    )
    train(config, args.data, args.out)


def _launch(n: int, device: str, data: Path, work: Path, args) -> dict:
    from delaynir.train import checkpoints

    out = work / f"{device}-{n}"
    env = dict(os.environ)
    if device == "cpu":
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // n))
    torchrun = Path(sys.executable).with_name("torchrun")
    command = [
        str(torchrun),
        "--standalone",
        f"--nproc_per_node={n}",
        __file__,
        "--worker",
        "--data",
        str(data),
        "--out",
        str(out),
        "--device",
        device,
        "--epochs",
        str(args.epochs),
        "--batch-size",
        str(args.batch_size),
        "--hidden",
        *map(str, args.hidden),
    ]
    subprocess.run(command, env=env, check=True, capture_output=True)
    rows = checkpoints.read_metrics(out)
    n_train = checkpoints.load_pt(out / checkpoints.CHECKPOINT)["data"]["n_train"]
    seconds = min(r["seconds"] for r in rows[1:] or rows)
    return {"device": device, "processes": n, "samples_per_s": n_train / seconds, "epoch_s": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--n-train", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 256])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return _worker(args)

    import torch

    from delaynir.data import SynthConfig, generate_synthetic

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        generate_synthetic(
            work / "data",
            SynthConfig(n_channels=140, n_classes=10, n_train=args.n_train, n_test=16, duration=0.5, spread=25, seed=0),
        )
        plans = [("cpu", [1, 2])]
        if torch.cuda.is_available():
            plans.append(("cuda", list(range(1, torch.cuda.device_count() + 1))))
        for device, counts in plans:
            base = None
            for n in counts:
                row = _launch(n, device, work / "data", work, args)
                base = base or row["samples_per_s"]
                row.update(speedup=row["samples_per_s"] / base, efficiency=row["samples_per_s"] / (n * base))
                results.append(row)
    meta = {
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "n_train": args.n_train,
        "global_batch": args.batch_size,
        "hidden": args.hidden,
        "epochs": args.epochs,
    }
    if args.json:
        print(json.dumps({"meta": meta, "results": results}, indent=2))
        return
    print(
        f"data-parallel training, global batch {args.batch_size}, hidden {args.hidden}, "
        f"{os.cpu_count()} CPU cores, torch {torch.__version__}"
    )
    print(f"{'device':>6} {'procs':>5} {'samples/s':>10} {'epoch s':>8} {'speedup':>8} {'efficiency':>10}")
    for r in results:
        print(
            f"{r['device']:>6} {r['processes']:>5} {r['samples_per_s']:>10.1f} {r['epoch_s']:>8.2f} "
            f"{r['speedup']:>8.2f} {r['efficiency']:>10.0%}"
        )


if __name__ == "__main__":
    main()
