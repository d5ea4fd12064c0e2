"""Generate the synthetic timing task, train learned delays and the no-delay ablation, compare.

    python examples/train_synthetic.py [OUT_DIR]

The Python API behind `delaynir demo`: copy and change the settings (any TrainConfig field).
"""

import logging
import sys
from pathlib import Path

from delaynir.data import SynthConfig, generate_synthetic
from delaynir.train.config import make_config
from delaynir.train.evaluate import evaluate_run
from delaynir.train.loop import train

logging.basicConfig(level=logging.INFO, format="%(message)s")
out = Path(sys.argv[1] if len(sys.argv) > 1 else "example-out")
train_file, test_file = generate_synthetic(out / "data", SynthConfig(seed=0), overwrite=True)
settings = {"hidden": [64, 64], "epochs": 20, "batch_size": 50, "lr": 5e-3, "dropout": 0.1, "val_fraction": 0.2}
for delays in ("learned", "none"):
    run_dir = out / delays
    if not (run_dir / "model.pt").exists():
        train(make_config(dict(settings, delays=delays)), train_file, run_dir)
    result = evaluate_run(run_dir, test_file)
    print(f"{delays:>8}: test accuracy {result['accuracy']:.3f} (rounded integer delays)")
