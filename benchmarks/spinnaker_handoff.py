"""The SpiNNaker hand-off on trained models: accuracy under SpiNNaker's weight representation, NEST spike for spike,
sPyNNaker's mapping onto a virtual board.

For each model — the demo's learned-delay run (``delaynir demo``, synthetic timing task, seed 0) and a spoken-digit
run (``delaynir data speech`` with its defaults, ``delaynir train --epochs 30``, one run per ``--seeds``) — it runs
the command line as a user would:

    delaynir evaluate RUN --data TEST                         # trained model, rounded delays
    delaynir compile RUN --target spinnaker --out G           # the spinnaker number format
    delaynir simulate G --data TEST                           # its test accuracy (reference simulator)
    delaynir verify G --data TEST --sims reference,nest --samples N
    delaynir bundle RUN --target spinnaker --out B            # NEST on the test vectors + sPyNNaker's mapping
    delaynir bundle --check B

and prints a Markdown table (``--json``: the figures). Needs the NEST and sPyNNaker environments
(targets/spinnaker/build_nest_env.sh, build_spynnaker_env.sh). Several minutes per model on 2 cores.

    python benchmarks/spinnaker_handoff.py [--work DIR] [--seeds 0 1] [--epochs 30] [--samples 100] [--json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def delaynir(*args: str) -> dict:
    """`delaynir ARGS --json`, its printed JSON."""
    done = subprocess.run(
        [sys.executable, "-m", "delaynir", "-q", *args, "--json"], capture_output=True, text=True, cwd=ROOT
    )
    if done.returncode != 0:
        raise SystemExit(f"delaynir {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)


def measure(name: str, run: Path, test: Path, work: Path, samples: int) -> dict:
    """Every figure of the hand-off of one trained run."""
    start = time.perf_counter()
    trained = delaynir("evaluate", str(run), "--data", str(test))
    graph = work / f"{name}.spinnaker.h5"
    compiled = delaynir("compile", str(run), "--target", "spinnaker", "--out", str(graph), "--overwrite")
    simulated = delaynir("simulate", str(graph), "--data", str(test))
    verified = delaynir(
        "verify", str(graph), "--data", str(test), "--sims", "reference,nest", "--samples", str(samples)
    )
    bundle = work / f"{name}.bundle"
    manifest = delaynir("bundle", str(run), "--target", "spinnaker", "--out", str(bundle), "--overwrite")
    check = delaynir("bundle", "--check", str(bundle))
    nest = verified["simulators"]["nest"]
    return {
        "model": name,
        "trained_test_accuracy": trained["accuracy"],
        "spinnaker_test_accuracy": simulated["accuracy"],
        "difference_pp": 100 * (simulated["accuracy"] - trained["accuracy"]),
        "test_samples": simulated["n"],
        "neurons": compiled.get("neurons"),
        "synapses": compiled.get("synapses"),
        "verify_nest": {
            "samples": verified["n"],
            "exact": nest["first_divergence"] is None and nest["prediction_agreement"] == 1.0,
            "first_divergence": nest["first_divergence"],
        },
        "bundle_nest": manifest["verification"]["nest"]["status"],
        "mapping": manifest["tool_checks"]["spynnaker"],
        "check_ok": check["ok"],
        "seconds": time.perf_counter() - start,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, help="working directory (default: a temporary one)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="speech training seeds")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--samples", type=int, default=100, help="test samples verify runs through NEST")
    parser.add_argument("--skip-speech", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--table", type=Path, help="print the table of a saved --json result instead of measuring")
    args = parser.parse_args(argv)
    if args.table:
        print(table(json.loads(args.table.read_text())))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        rows = []
        demo = work / "demo"
        if not (demo / "runs" / "learned").is_dir():
            delaynir("demo", "--out", str(demo))
        rows.append(measure("demo-learned", demo / "runs" / "learned", demo / "data" / "test.h5", work, args.samples))
        if not args.skip_speech:
            speech = work / "speech"
            if not (speech / "test.h5").is_file():
                delaynir("data", "speech", "--out", str(speech))
            for seed in args.seeds:
                run = work / "runs" / f"speech-s{seed}"
                if not (run / "summary.json").is_file():
                    delaynir(
                        "train",
                        "--data",
                        str(speech),
                        "--out",
                        str(run),
                        "--epochs",
                        str(args.epochs),
                        "--seed",
                        str(seed),
                    )
                rows.append(measure(f"speech-s{seed}", run, speech / "test.h5", work, args.samples))
    print(json.dumps(rows, indent=2) if args.json else table(rows))
    return 0


def table(rows: list[dict]) -> str:
    """The README's Markdown table of measured rows."""
    lines = [
        "| model | trained test acc. | compiled for spinnaker | Δ | NEST (`verify`) | NEST on the bundle | sPyNNaker mapping |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        m, nest = r["mapping"], r["verify_nest"]
        mapping = (
            f"{m['chips']} chip{'s' if m['chips'] > 1 else ''}, {m['cores']} cores ({m['neuron_cores']} neuron, "
            f"{m['delay_extension_cores']} delay-extension)"
            if m["status"] == "accepted"
            else m["status"]
        )
        same = (
            f"spike-exact, {nest['samples']} test samples" if nest["exact"] else f"differs: {nest['first_divergence']}"
        )
        lines.append(
            f"| {r['model']} ({r['neurons']} neurons, {r['synapses']} synapses) | {r['trained_test_accuracy']:.3f} | "
            f"{r['spinnaker_test_accuracy']:.3f} | {r['difference_pp']:+.2f} pp | {same} | {r['bundle_nest']} | "
            f"{mapping} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
