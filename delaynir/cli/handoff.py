"""What goes to others: ``delaynir verify``, ``bundle`` (and ``bundle --check``), ``report``."""

from __future__ import annotations

import sys

from delaynir.cli.common import add_overwrite, command, passed, progress, show
from delaynir.compile.compiler import FIT_POLICIES
from delaynir.errors import ConfigError
from delaynir.export import executors


def cmd_verify(args) -> int:
    from delaynir.handoff.verify import verify_path

    report = verify_path(
        args.model,
        args.data,
        sims=[s.strip() for s in args.sims.split(",") if s.strip() and s.strip() != "reference"],
        target=args.target,
        batch_size=args.batch_size,
        samples=args.samples,
        progress=progress(),
        threshold=args.threshold,
    )
    show(args, report)
    return passed(report.passed)


def cmd_bundle(args) -> int:
    from delaynir.handoff.bundle import check_bundle, write_bundle

    if args.check:
        if args.run_dir or args.out:
            raise ConfigError("`delaynir bundle --check DIR` takes only the bundle directory (no RUN_DIR or --out)")
        report = check_bundle(args.check, progress=progress())
        if args.json or report.ok:
            show(args, report)
        else:
            print(report, file=sys.stderr)
        return passed(report.ok)
    if not (args.run_dir and args.target and args.out):
        raise ConfigError("`delaynir bundle` needs RUN_DIR, --target and --out (or --check DIR)")
    manifest = write_bundle(
        args.run_dir,
        args.target,
        args.out,
        data=args.data,
        n_samples=args.samples,
        overwrite=args.overwrite,
        progress=progress(),
        fit=args.fit,
        allow_mismatch=args.allow_mismatch,
    )
    show(args, manifest)
    return 0


def cmd_report(args) -> int:
    from delaynir.handoff.report import write_report

    result = write_report(
        args.run_dir, args.out, target=args.target, data=args.data, overwrite=args.overwrite, progress=progress()
    )
    show(
        args,
        result,
        f"report of {args.run_dir}: open {result['html']} ({len(result['images'])} figures in {result['out']})",
    )
    return 0


def register(sub) -> None:
    v = command(sub, cmd_verify, "verify", help="run a model in the reference simulator and other simulators, compare")
    v.add_argument("model", help="DelayGraph .h5, or a run directory (compiled in memory for --target)")
    v.add_argument("--data", required=True, help="SHD-layout .h5 file, or a directory with test.h5")
    v.add_argument(
        "--sims",
        default="reference,norse,snntorch",
        help=f"comma list of {', '.join(executors.names())} (default: reference,norse,snntorch)",
    )
    v.add_argument("--target", default="float", help="target to compile a run directory for (default: float)")
    v.add_argument(
        "--threshold",
        type=float,
        default=0.999,
        help="lowest acceptable spike and prediction agreement (default 0.999); exit 1 below it",
    )
    v.add_argument("--batch-size", type=int, default=64)
    v.add_argument(
        "--samples",
        type=int,
        metavar="N",
        help="only the first N samples of the data file, for a slow simulator such as a chip's; default all",
    )

    b = command(sub, cmd_bundle, "bundle", help="hand-off bundle for a hardware team (or --check one)")
    b.add_argument("run_dir", nargs="?", help="run directory to compile and bundle")
    b.add_argument("--target", help="built-in target name or a .toml path")
    b.add_argument("--out", help="bundle directory to create (must not exist unless --overwrite)")
    b.add_argument(
        "--data",
        help="test data: SHD-layout .h5, or a directory with test.h5 (default: test.h5 beside the run's training file)",
    )
    b.add_argument("--samples", type=int, default=16, help="test-vector samples (default 16)")
    add_overwrite(b, "replace an existing --out directory")
    b.add_argument(
        "--fit",
        default="error",
        choices=FIT_POLICIES,
        help="delays longer than the target allows, as for `delaynir compile` (default: error)",
    )
    b.add_argument(
        "--allow-mismatch",
        metavar="SIM[,SIM]",
        help=f"write the bundle even if these simulators ({', '.join(executors.external())}) do not "
        "reproduce the test vectors, marked so in manifest.json; without it such a bundle is not "
        "written (exit 1)",
    )
    b.add_argument("--check", metavar="DIR", help="re-verify a bundle from its files alone; exit 1 if anything fails")

    r = command(sub, cmd_report, "report", help="HTML report with figures of what a run learned")
    r.add_argument("run_dir")
    r.add_argument("--out", help="report directory (default: RUN_DIR/report)")
    add_overwrite(r, "replace an existing report directory")
    r.add_argument(
        "--target",
        help="target for the hardware-fit table (default: the first installed chip target's profile, else int8)",
    )
    r.add_argument("--data", help="test data (default: test.h5 beside the run's training file)")
