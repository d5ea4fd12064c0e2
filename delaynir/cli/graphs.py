"""DelayGraph commands: ``delaynir targets``, ``compile``, ``simulate``, ``export``, ``map``, ``import``,
``import-model``."""

from __future__ import annotations

from delaynir.cli.common import add_overwrite, command, show
from delaynir.compile.compiler import FIT_POLICIES, compile_run
from delaynir.errors import ConfigError
from delaynir.export import executors
from delaynir.export.executors import ExecutorUnavailable
from delaynir.train.import_model import SOURCES


def cmd_targets(args) -> int:
    from delaynir.hardware.profile import list_targets, load_target
    from delaynir.hardware.table import format_target_packages, format_targets_table

    profiles = [load_target(args.profile)] if args.profile else list_targets()
    text = format_targets_table(profiles)
    if not args.profile:
        text += "\n\n" + format_target_packages()
    show(args, [p.to_dict() for p in profiles], text)
    return 0


def cmd_compile(args) -> int:
    show(args, compile_run(args.run_dir, args.target, args.out, fit=args.fit, overwrite=args.overwrite))
    return 0


def cmd_simulate(args) -> int:
    from delaynir.handoff.graph_data import evaluate_graph

    result = evaluate_graph(args.graph, args.data, batch_size=args.batch_size)
    show(
        args,
        result,
        f"{args.graph} on {result['data']}: accuracy {result['accuracy']:.4f} in the reference simulator "
        f"({result['n']} samples)",
    )
    return 0


def cmd_map(args) -> int:
    from delaynir.export import tool_checks
    from delaynir.hardware.fit import raise_if_misfit
    from delaynir.hardware.profile import load_target
    from delaynir.ir.graph_io import load_graph

    graph = load_graph(args.graph)
    checks = tool_checks.named([c.strip() for c in args.check.split(",") if c.strip()] if args.check else None, graph)
    if not checks:
        installed = {c.name: c.targets for c in tool_checks.tool_checks()}
        raise ConfigError(
            f"{args.graph} is compiled for {graph.target!r}, which no installed vendor tool checks (installed: "
            + (", ".join(f"{name} for {'/'.join(t)}" for name, t in installed.items()) or "none")
            + "); compile for one of those targets, or name a check with --check"
        )
    for check in checks:  # delaynir's own fit check first: what does not fit never reaches the vendor's tool
        for target in check.targets:
            raise_if_misfit(graph, load_target(target))
    results = {c.name: c.run(graph) for c in checks}
    refused = tool_checks.refusal(results)
    if refused:
        raise refused
    missing = [r["error"] for r in results.values() if r["status"] == tool_checks.UNAVAILABLE]
    if missing:
        raise ExecutorUnavailable(missing[0])
    text = "\n".join(tool_checks.summary(name, r) for name, r in results.items())
    show(args, {"graph": args.graph, "target": graph.target, "checks": results}, text)
    return 0


def cmd_export(args) -> int:
    from delaynir.ir.graph_io import load_graph

    graph = load_graph(args.file)
    path = executors.export_graph(graph, args.out, args.format, overwrite=args.overwrite)
    beside = [str(path.parent / c.file) for c in executors.export_formats()[args.format.lower()].companions]
    result = {"graph": args.file, "format": args.format, "out": str(path), "bytes": path.stat().st_size}
    result["companions"] = beside
    text = f"exported {args.file} as {args.format.upper()} to {path} ({result['bytes']} bytes)"
    show(args, result, text + "".join(f"\n  and {name} beside it" for name in beside))
    return 0


def cmd_import(args) -> int:
    from delaynir.export.nir_io import from_nir
    from delaynir.ir.graph_io import save_graph

    graph = from_nir(args.file, dt=args.dt)
    path = save_graph(graph, args.out, overwrite=args.overwrite)
    result = {
        "nir": args.file,
        "out": str(path),
        "dt": graph.dt,
        "layers": [layer.name for layer in graph.layers],
        "neurons": graph.n_neurons,
        "synapses": graph.n_synapses,
        "max_delay": graph.max_delay,
    }
    show(
        args,
        result,
        f"imported {args.file} (dt = {graph.dt} s) into {path}: layers {', '.join(result['layers'])}, "
        f"{graph.n_synapses} synapses, delays up to {graph.max_delay} steps",
    )
    return 0


def cmd_import_model(args) -> int:
    from delaynir.train.import_model import import_model

    summary = import_model(
        args.checkpoint,
        args.source,
        args.out,
        args.data,
        max_delay=args.max_delay,
        tau_steps=args.tau_steps,
        threshold=args.threshold,
        dt=args.dt,
        n_steps=args.n_steps,
        overwrite=args.overwrite,
    )
    shapes = " → ".join([str(summary["layers"][0]["inputs"])] + [str(la["outputs"]) for la in summary["layers"]])
    show(
        args,
        summary,
        f"imported {args.checkpoint} ({args.source}: {shapes}, D = {summary['max_delay']} taps, "
        f"σ = {summary['sigma']:.3g} steps, τ = {summary['tau_steps']} steps) into {summary['run_dir']}; "
        f"compile it with `delaynir compile {summary['run_dir']} --target TARGET --out FILE`",
    )
    return 0


def register(sub) -> None:
    g = command(sub, cmd_targets, "targets", help="list the hardware target profiles and their limits")
    g.add_argument("--profile", help="show one profile: a built-in name or a path to your own .toml")

    c = command(
        sub, cmd_compile, "compile", help="compile a run into a quantised integer-delay DelayGraph for a target"
    )
    c.add_argument("run_dir")
    c.add_argument("--target", required=True, help="built-in target name (see `delaynir targets`) or a .toml path")
    c.add_argument("--out", required=True, help="DelayGraph file to write (.h5)")
    c.add_argument(
        "--fit",
        default="error",
        choices=FIT_POLICIES,
        help="what to do with delays longer than the target allows (default: error)",
    )
    add_overwrite(c, "replace an existing --out file")

    m = command(sub, cmd_simulate, "simulate", help="accuracy of a DelayGraph file in the reference simulator")
    m.add_argument("graph")
    m.add_argument("--data", required=True, help="SHD-layout .h5 file, or a directory with test.h5")
    m.add_argument("--batch-size", type=int, default=256)

    x = command(sub, cmd_export, "export", help=f"export a DelayGraph file as {', '.join(executors.export_formats())}")
    x.add_argument("file", help="DelayGraph .h5 (from `delaynir compile`)")
    x.add_argument("--format", required=True, choices=list(executors.export_formats()))
    x.add_argument("-o", "--out", required=True)
    add_overwrite(x)

    p = command(
        sub,
        cmd_map,
        "map",
        help="run the target vendor's own tool on a compiled graph without the hardware (a mapper onto a virtual "
        "board, a chip compiler): does it accept the model, and what does it use (`delaynir targets` lists them)",
    )
    p.add_argument("graph", help="DelayGraph .h5 compiled for a target with a vendor tool check")
    p.add_argument("--check", help="comma list of tool checks to run (default: those of the graph's target)")

    i = command(sub, cmd_import, "import", help="import a NIR file (ours or another tool's) as a DelayGraph")
    i.add_argument("file", help=".nir file")
    i.add_argument("--dt", type=float, help="time step in seconds (required unless the file is delaynir's)")
    i.add_argument("--out", required=True, help="DelayGraph .h5 to write")
    add_overwrite(i)

    im = command(
        sub,
        cmd_import_model,
        "import-model",
        help="a PyTorch checkpoint of SNN-delays or the paper's code as a run "
        "directory (compile, export, verify it like a trained run)",
    )
    im.add_argument("checkpoint", help="state dict of tensors (torch.save(model.state_dict(), PATH))")
    im.add_argument("--from", dest="source", required=True, choices=SOURCES)
    im.add_argument("--out", required=True, help="run directory to create")
    im.add_argument(
        "--data",
        required=True,
        help="the data the model takes: SHD- or frames-layout .h5, or a "
        "directory with train.h5 (binning, classes, compile's validation split)",
    )
    im.add_argument("--max-delay", type=int, default=25, help="the Dcls1d's dilated_kernel_size D (default 25)")
    im.add_argument(
        "--tau-steps",
        type=float,
        help="LIF τ in steps (default: 1.005 for snn-delays, whose code "
        "divides 10.05 ms by its 10 ms step; 10.05 for paper)",
    )
    im.add_argument("--threshold", type=float, default=1.0, help="LIF threshold (default 1.0)")
    im.add_argument("--dt", type=float, default=0.01, help="time step in seconds (default 0.01)")
    im.add_argument("--n-steps", type=int, default=0, help="steps per sample (default: the data's)")
    add_overwrite(im, "write into an existing non-empty --out")
