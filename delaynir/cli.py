"""The ``delaynir`` command. Every command that reports figures takes ``--json``.

Errors derived from DelayNIRError are printed as one message (no traceback) and the
command exits with status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from typing import Any

from delaynir import __version__, executors
from delaynir.errors import DelayNIRError
from delaynir.nn.allocator import tune_cpu_allocator


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


def _progress() -> bool:
    return sys.stderr.isatty()


def cmd_data_synth(args) -> int:
    from delaynir.data import SynthConfig, generate_synthetic

    fields = {
        "n_channels": args.channels,
        "n_classes": args.classes,
        "n_train": args.train,
        "n_test": args.test,
        "duration": args.duration,
        "spread": args.spread,
        "n_groups": args.groups,
        "seed": args.seed,
    }
    config = SynthConfig(**{k: v for k, v in fields.items() if v is not None})
    train_path, test_path = generate_synthetic(args.out, config, overwrite=args.overwrite)
    result = {"train": str(train_path), "test": str(test_path), "config": dataclasses.asdict(config)}
    if args.json:
        _print_json(result)
    else:
        print(
            f"wrote {train_path} ({config.n_train} samples) and {test_path} ({config.n_test} samples): "
            f"{config.n_classes} classes, {config.n_channels} channels, {config.duration} s"
        )
    return 0


def _speaker_ids(text: str) -> tuple[int, ...]:
    """'0,1,4' -> (0, 1, 4); an empty string -> ()."""
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated speaker ids such as 0,1,4, got {text!r}") from None


def cmd_data_speech(args) -> int:
    from delaynir.data.cochlea import CochleaConfig
    from delaynir.data.speech import SpeechConfig, generate_speech

    cochlea = {"n_channels": args.channels}
    fields = {
        "trials": args.trials,
        "test_trials": args.test_trials,
        "speakers": args.speakers,
        "test_speakers": args.test_speakers,
        "duration": args.duration,
        "seed": args.seed,
        "workers": args.workers,
        "cochlea": CochleaConfig(**{k: v for k, v in cochlea.items() if v is not None}),
    }
    config = SpeechConfig(**{k: v for k, v in fields.items() if v is not None})
    summary = generate_speech(args.out, config, overwrite=args.overwrite, progress=_progress())
    if args.json:
        _print_json(summary.as_dict())
    else:
        print(
            f"wrote {summary.audio} ({summary.n_train + summary.n_test} FLAC files, {summary.sample_rate} Hz), "
            f"{summary.train} ({summary.n_train} samples, speakers {summary.train_speakers}) and {summary.test} "
            f"({summary.n_test} samples, speakers {summary.test_speakers}): {summary.n_channels} channels, "
            f"{summary.duration} s, {summary.mean_spikes:.0f} spikes per sample on average, {summary.seconds:.0f} s"
        )
    return 0


def cmd_data_audio(args) -> int:
    from delaynir.data.audio import convert_audio
    from delaynir.data.features import FeatureConfig

    fields = {"n_bands": args.bands, "n_frames": args.frames, "hop": args.hop, "sample_rate": args.sample_rate}
    config = FeatureConfig(**{k: v for k, v in fields.items() if v is not None})
    summary = convert_audio(
        args.input, args.out, config, labels=args.labels, overwrite=args.overwrite, progress=_progress()
    )
    if args.json:
        _print_json(summary)
    else:
        written = ", ".join(
            f"{summary[s]['path']} ({summary[s]['samples']} samples)" for s in ("train", "test") if s in summary
        )
        print(
            f"wrote {written}: {config.n_bands} mel bands x {config.n_frames} frames of {config.hop} s "
            f"({summary['layout']} layout), shifted by the training minimum {summary['features']['shift_db']:.1f} dB"
        )
    return 0


def cmd_data_check(args) -> int:
    from delaynir.data import SpikeDataset
    from delaynir.data.frames import FramesDataset, is_frames_file

    graded = is_frames_file(args.file)
    if graded:
        ds = FramesDataset(args.file, dt=args.dt if args.dt is not None else _frame_dt(args.file))
    else:
        ds = SpikeDataset(args.file, dt=args.dt or 0.01, n_steps=1, pool=1, n_channels=args.channels, cache=False)
    speakers = None if ds.speakers is None else sorted({int(s) for s in ds.speakers})
    result = {
        "file": str(args.file),
        "layout": "frames" if graded else "shd",
        "samples": len(ds),
        "classes": ds.n_classes,
        "channels": ds.n_channels,
        "speakers": speakers,
        "keys": ds.keys,
        "valid": True,
    }
    if args.json:
        _print_json(result)
    else:
        print(
            f"{args.file}: valid {'frames' if graded else 'SHD'} layout, {len(ds)} samples, {ds.n_classes} classes, "
            f"{ds.n_channels} channels" + (f", {len(speakers)} speakers" if speakers else "")
        )
    return 0


def _frame_dt(path) -> float:
    from delaynir.data.frames import DT_ATTR
    from delaynir.data.shd import spike_file

    with spike_file(path) as f:
        return float(f.attrs.get(DT_ATTR, 0.01))


def _print_dry_run(config, preset: str | None, file_values: dict, overrides: dict, as_json: bool) -> None:
    """Every training setting, where its value comes from and (for a preset) why."""
    from delaynir.presets import PRESET_NOTES, preset_note, preset_values

    base = preset_values(preset)
    rows = [
        {
            "setting": key,
            "value": value,
            "from": "flag"
            if overrides.get(key) is not None
            else "config file"
            if key in file_values
            else f"preset {preset}"
            if key in base
            else "default",
        }
        for key, value in config.to_dict().items()
    ]
    for r in rows:
        r["note"] = preset_note(preset, r["setting"]) if r["from"].startswith("preset") else ""
    notes = PRESET_NOTES.get(preset or "", [])
    if as_json:
        _print_json({"preset": preset, "settings": rows, "notes": notes})
        return
    width = max(len(r["setting"]) for r in rows)
    shown = [json.dumps(r["value"]) for r in rows]
    vwidth = max(len(v) for v in shown)
    print(
        f"training settings{f' (preset {preset})' if preset else ''}; override any with a flag or --config FILE.toml:"
    )
    for r, value in zip(rows, shown):
        print(f"  {r['setting']:<{width}}  {value:<{vwidth}}  {r['from']:<18} {r['note']}".rstrip())
    for note in notes:
        print(f"note: {note}")


def cmd_train(args) -> int:
    from delaynir.config import load_config, read_config_file
    from delaynir.errors import ConfigError
    from delaynir.presets import preset_values
    from delaynir.train import train

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
        _print_dry_run(config, args.preset, file_values, overrides, args.json)
        return 0
    if not (args.data and args.out):
        raise ConfigError("`delaynir train` needs --data and --out (or --dry-run to print the settings)")
    summary = train(config, args.data, args.out, resume=args.resume, progress=_progress())
    if int(os.environ.get("RANK", "0")) != 0:
        return 0  # under torchrun, rank 0 reports for the run
    if args.json:
        _print_json(summary)
    else:
        print(
            f"trained {summary['run_dir']} ({summary['delays']} delays, {summary['epochs']} epochs on "
            f"{summary['device']}): best validation accuracy {summary['best_val_accuracy']:.4f} "
            f"at epoch {summary['best_epoch']} (rounded delays)"
        )
    return 0


def cmd_finetune(args) -> int:
    from delaynir.train import finetune

    summary = finetune(args.run_dir, args.target, args.out, epochs=args.epochs, lr=args.lr, progress=_progress())
    if args.json:
        _print_json(summary)
    else:
        print(
            f"fine-tuned {args.run_dir} for {args.target} into {summary['run_dir']}: best validation accuracy "
            f"{summary['best_val_accuracy']:.4f} with quantised weights and rounded delays; compile it with "
            f"`delaynir compile {summary['run_dir']} --target {args.target} --out FILE`"
        )
    return 0


def cmd_evaluate(args) -> int:
    from delaynir.evaluate import evaluate_run

    result = evaluate_run(args.run_dir, args.data, device=args.device, batch_size=args.batch_size)
    if args.json:
        _print_json(result)
    else:
        line = f"{result['data']}: accuracy {result['accuracy']:.4f} with rounded integer delays"
        if "accuracy_gaussian" in result:
            line += f", {result['accuracy_gaussian']:.4f} with Gaussian kernels (σ = {result['sigma']:.2f} steps)"
        print(line + f" ({result['n']} samples)")
        if "unseen_speakers" in result:
            unseen = result["unseen_speakers"]
            print(
                f"  speakers never seen in training ({', '.join(map(str, unseen['speakers']))}): accuracy "
                f"{unseen['accuracy']:.4f} ({unseen['n']} samples)"
            )
    return 0


def cmd_targets(args) -> int:
    from delaynir.target import list_targets, load_target
    from delaynir.target_table import format_targets_table

    profiles = [load_target(args.profile)] if args.profile else list_targets()
    if args.json:
        _print_json([p.to_dict() for p in profiles])
    else:
        print(format_targets_table(profiles))
    return 0


def cmd_compile(args) -> int:
    from delaynir.compile import compile_run

    report = compile_run(args.run_dir, args.target, args.out, fit=args.fit, overwrite=args.overwrite)
    if args.json:
        _print_json(report)
        return 0
    val = report["validation"]
    print(
        f"compiled {args.run_dir} for {report['target']} -> {report['out']}: {report['neurons']} neurons, "
        f"{report['synapses']} synapses, max delay {report['max_delay']} steps"
        + (f", {report['relay_neurons']} relay neurons" if report["relay_neurons"] else "")
    )
    print(f"{'layer':<10} {'synapses':>9} {'zeros removed':>14} {'w clipped':>10} {'d clipped':>10} {'max d':>6}")
    for r in report["layers"]:
        print(
            f"{r['layer']:<10} {r['synapses']:>9} {r['zero_weights_removed']:>14} {r['weights_clipped']:>10} "
            f"{r['delays_clipped']:>10} {r['max_delay']:>6}"
        )
    agreement = ", ".join(f"{k} {v:.4%}" for k, v in val["spike_agreement"].items())
    if "trained_accuracy_quantized_input" in val:
        spec = report["input"]
        print(
            f"graded input quantised to {spec['bits']}-bit codes (value = code x {spec['input_scale']:.4g}): "
            f"trained model {val['trained_accuracy']:.4f} with float input, "
            f"{val['trained_accuracy_quantized_input']:.4f} with the quantised input"
        )
    print(
        f"validation ({val['n']} samples): trained {val['trained_accuracy']:.4f}, compiled "
        f"{val['compiled_accuracy']:.4f}, same prediction {val['prediction_agreement']:.4f}; "
        f"identical spikes: {agreement}"
    )
    return 0


def cmd_simulate(args) -> int:
    from delaynir.evaluate import evaluate_graph

    result = evaluate_graph(args.graph, args.data, batch_size=args.batch_size)
    if args.json:
        _print_json(result)
    else:
        print(
            f"{args.graph} on {result['data']}: accuracy {result['accuracy']:.4f} in the reference simulator "
            f"({result['n']} samples)"
        )
    return 0


def cmd_export(args) -> int:
    from delaynir.graph_io import load_graph

    graph = load_graph(args.file)
    path = executors.export_formats()[args.format].write(graph, args.out, overwrite=args.overwrite)
    result = {"graph": args.file, "format": args.format, "out": str(path), "bytes": path.stat().st_size}
    if args.json:
        _print_json(result)
    else:
        print(f"exported {args.file} as {args.format.upper()} to {path} ({result['bytes']} bytes)")
    return 0


def cmd_import(args) -> int:
    from delaynir.graph_io import save_graph
    from delaynir.nir_io import from_nir

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
    if args.json:
        _print_json(result)
    else:
        print(
            f"imported {args.file} (dt = {graph.dt} s) into {path}: layers {', '.join(result['layers'])}, "
            f"{graph.n_synapses} synapses, delays up to {graph.max_delay} steps"
        )
    return 0


def cmd_import_model(args) -> int:
    from delaynir.import_model import import_model

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
    if args.json:
        _print_json(summary)
    else:
        shapes = " → ".join([str(summary["layers"][0]["inputs"])] + [str(la["outputs"]) for la in summary["layers"]])
        print(
            f"imported {args.checkpoint} ({args.source}: {shapes}, D = {summary['max_delay']} taps, "
            f"σ = {summary['sigma']:.3g} steps, τ = {summary['tau_steps']} steps) into {summary['run_dir']}; "
            f"compile it with `delaynir compile {summary['run_dir']} --target TARGET --out FILE`"
        )
    return 0


def _print_verification(report: dict[str, Any]) -> None:
    print(
        f"{report['model']} on {report['data']} ({report['n']} samples): reference simulator accuracy "
        f"{report['reference_accuracy']:.4f}"
    )
    print(f"{'simulator':<12} {'accuracy':>9} {'same pred.':>11}  identical spikes per layer")
    for name, r in report["simulators"].items():
        spikes = ", ".join(f"{k} {v:.4%}" for k, v in r["spike_agreement"].items())
        print(f"{name:<12} {r['accuracy']:>9.4f} {r['prediction_agreement']:>11.2%}  {spikes}")
        if r["first_divergence"]:
            d = r["first_divergence"]
            print(
                f"{'':<12} first divergence: layer {d['layer']}, sample {d['sample']}, neuron {d['neuron']}, "
                f"step {d['step']}: membrane {d['reference_membrane']:.6g} (reference) vs {d['other_membrane']}"
            )


def cmd_verify(args) -> int:
    from delaynir.verify import verify_path, worst_agreement

    sims = [s.strip() for s in args.sims.split(",") if s.strip() and s.strip() != "reference"]
    report = verify_path(
        args.model,
        args.data,
        sims=sims,
        target=args.target,
        batch_size=args.batch_size,
        samples=args.samples,
        progress=_progress(),
    )
    worst = worst_agreement(report)
    report.update(threshold=args.threshold, passed=worst >= args.threshold)
    if args.json:
        _print_json(report)
    else:
        _print_verification(report)
        print(
            f"{'passed' if report['passed'] else 'FAILED'}: lowest agreement {worst:.4%} "
            f"(threshold {args.threshold:.4%})"
        )
    return 0 if report["passed"] else 1


def cmd_bundle(args) -> int:
    from delaynir.bundle import check_bundle, write_bundle
    from delaynir.errors import ConfigError, VerificationError

    if args.check:
        if args.run_dir or args.out:
            raise ConfigError("`delaynir bundle --check DIR` takes only the bundle directory (no RUN_DIR or --out)")
        report = check_bundle(args.check, progress=_progress())
        if args.json:
            _print_json(report)
        elif report["ok"]:
            exact = [k for k, r in report["simulators"].items() if r.get("status") == "exact"]
            allowed = [k for k, r in report["simulators"].items() if r.get("allowed_mismatch")]
            print(
                f"bundle {args.check} passed: {len(report['files'])} files match manifest.json; "
                f"{', '.join(exact)} reproduce the test vectors exactly"
                + (f"; {', '.join(allowed)} do not, as manifest.json records (--allow-mismatch)" if allowed else "")
            )
            for note in report["notes"]:
                print(f"  note: {note}")
        else:
            print(
                f"delaynir: bundle check FAILED for {args.check} ({len(report['problems'])} problems):\n  - "
                + "\n  - ".join(report["problems"]),
                file=sys.stderr,
            )
            for note in report["notes"]:
                print(f"  note: {note}", file=sys.stderr)
        return 0 if report["ok"] else 1
    if not (args.run_dir and args.target and args.out):
        raise ConfigError("`delaynir bundle` needs RUN_DIR, --target and --out (or --check DIR)")
    try:
        manifest = write_bundle(
            args.run_dir,
            args.target,
            args.out,
            data=args.data,
            n_samples=args.samples,
            overwrite=args.overwrite,
            progress=_progress(),
            fit=args.fit,
            allow_mismatch=args.allow_mismatch,
        )
    except VerificationError as exc:  # a verification failure, as for `verify` and `bundle --check`: status 1
        print(f"delaynir: {exc}", file=sys.stderr)
        return 1
    if args.json:
        _print_json(manifest)
        return 0
    s, acc = manifest["sizes"], manifest["accuracy"]
    print(
        f"bundle for {manifest['target']['name']} written to {manifest['out']}: {s['neurons']} neurons, "
        f"{s['synapses']} synapses, max delay {s['max_delay']} steps; validation accuracy trained "
        f"{acc['trained_accuracy']:.4f}, compiled {acc['compiled_accuracy']:.4f}"
    )
    for name, r in manifest["verification"].items():
        if r["status"] in ("unavailable", "not exported"):
            print(f"  {name:<12} not run: {r['error']}")
            continue
        spikes = ", ".join(f"{k} {v:.2%}" for k, v in r["spike_agreement"].items())
        status = (
            "reproduces the test vectors exactly"
            if r["status"] == "exact"
            else "does NOT reproduce the test vectors (allowed: --allow-mismatch)"
        )
        print(f"  {name:<12} {status}: same prediction {r['prediction_agreement']:.2%}, identical spikes {spikes}")
    for name, entry in manifest["files"].items():
        print(f"  {name:<20} {entry['bytes']:>9} bytes  sha256 {entry['sha256'][:16]}…")
    return 0


def cmd_report(args) -> int:
    from delaynir.report import write_report

    result = write_report(
        args.run_dir, args.out, target=args.target, data=args.data, overwrite=args.overwrite, progress=_progress()
    )
    if args.json:
        _print_json(result)
    else:
        print(f"report of {args.run_dir}: open {result['html']} ({len(result['images'])} figures in {result['out']})")
    return 0


def _speech_summary(speech: dict) -> str:
    if "skipped" in speech:
        return "skipped (espeak-ng not installed)"
    unseen = speech["unseen_speakers"]
    return f"{speech['test_accuracy']:.4f} / " + ("–" if unseen is None else f"{unseen['accuracy']:.4f}")


def _reproduces(verification: dict) -> str:
    """'yes' when every simulator of a verification has identical spikes and predictions."""
    from delaynir.verify import worst_agreement

    return "yes" if worst_agreement(verification) == 1.0 else "NO"


def _graded_summary(graded: dict) -> str:
    if "skipped" in graded:
        return "skipped (espeak-ng not installed)"
    return (
        f"{graded['test_accuracy']:.4f} / {graded['compiled']['test_accuracy']:.4f} / "
        f"{_reproduces(graded['verification'])}"
    )


def cmd_demo(args) -> int:
    from delaynir.demo import run_demo

    result = run_demo(
        args.out,
        device=args.device,
        epochs=args.epochs,
        seed=args.seed,
        force=args.force,
        progress=_progress(),
        target=args.target,
    )
    if args.json:
        _print_json(result)
        return 0
    print(f"\ndelaynir demo: synthetic timing task in {result['out']}/data")
    print(f"{'delays':<10} {'val acc':>8} {'test acc (rounded)':>19} {'test acc (gaussian)':>20}  run")
    for name, r in result["runs"].items():
        gauss = "-" if r["test_accuracy_gaussian"] is None else f"{r['test_accuracy_gaussian']:.4f}"
        print(f"{name:<10} {r['val_accuracy']:>8.4f} {r['test_accuracy']:>19.4f} {gauss:>20}  {r['run_dir']}")
    c = result["compiled"]
    v = c["validation"]
    print(
        f"\ncompiled for {c['target']}: {c['graph']} ({c['neurons']} neurons, {c['synapses']} synapses, "
        f"max delay {c['max_delay']} steps)"
    )
    print(
        f"  validation: trained {v['trained_accuracy']:.4f}, compiled {v['compiled_accuracy']:.4f} "
        f"(same prediction on {v['prediction_agreement']:.2%}); test accuracy of the compiled graph "
        f"{c['test_accuracy']:.4f}"
    )
    print(f"\nexported to NIR: {result['nir']} and ONNX: {result['onnx']}; verification on the test set:")
    _print_verification(result["verification"])
    b, rep = result["bundle"], result["report"]
    cl, fit = rep["clustering"], rep["hardware_fit"]
    print("\nsummary")
    rows = [
        ("learned delays, test accuracy", f"{result['runs']['learned']['test_accuracy']:.4f}"),
        ("no delays, test accuracy", f"{result['runs']['none']['test_accuracy']:.4f}"),
        ("pruned delay taps (2 % kept), test accuracy", f"{result['runs']['pruned']['test_accuracy']:.4f}"),
        ("spoken digits (espeak-ng), test accuracy / unseen speaker", _speech_summary(result["speech"])),
        (f"compiled ({c['target']}), test accuracy", f"{c['test_accuracy']:.4f}"),
        ("mel frames, graded (paper's net): test / compiled / exact", _graded_summary(result["graded"])),
        (
            f"{result['chip']['target']} ({result['chip']['arithmetic']}), test accuracy / cost vs trained",
            f"{result['chip']['test_accuracy']:.4f} / {result['chip']['cost_pp']:+.2f} pp",
        ),
        ("exported files reproduce the reference", _reproduces(result["verification"])),
        (
            "E/I clustering (same-sign share vs shuffled)",
            f"{cl['same_sign_fraction']:.3f} vs {cl['shuffled_baseline']:.3f}",
        ),
        (f"fits {fit['target']} (before quantisation)", "yes" if fit["fits"] else "no"),
    ]
    for name, value in rows:
        print(f"  {name:<58} {value}")
    print(
        f"\nopen:\n  report  {rep['html']}\n  bundle  {b['out']}/README.md  (check it: delaynir bundle --check "
        f"{b['out']})"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="delaynir", description="Spiking networks with learnable synaptic delays.")
    p.add_argument("--version", action="version", version=f"delaynir {__version__}")
    p.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    sub = p.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="spike data: generate the synthetic task, check a file")
    dsub = data.add_subparsers(dest="data_command", required=True)
    s = dsub.add_parser("synth", help="write the synthetic timing task as train.h5 and test.h5 (SHD layout)")
    s.add_argument("--out", required=True, help="output directory")
    s.add_argument("--channels", type=int)
    s.add_argument("--classes", type=int)
    s.add_argument("--train", type=int, help="training samples")
    s.add_argument("--test", type=int, help="test samples")
    s.add_argument("--duration", type=float, help="seconds per sample")
    s.add_argument("--spread", type=int, help="steps from the first to the last band of a pattern")
    s.add_argument("--groups", type=int, help="channel bands whose firing order defines a class")
    s.add_argument("--seed", type=int)
    s.add_argument("--overwrite", action="store_true", help="replace existing train.h5/test.h5")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_data_synth)
    sp = dsub.add_parser(
        "speech",
        help="spoken digits from espeak-ng speakers: HD-layout audio (FLAC) and SHD-layout "
        "spikes from a cochlea model (train.h5, test.h5)",
    )
    sp.add_argument("--out", required=True, help="output directory")
    sp.add_argument("--trials", type=int, help="utterances per speaker and class (default 12)")
    sp.add_argument(
        "--test-trials",
        type=int,
        help="trials of each training speaker and class put in the test split (default 1; 0 if --trials 1)",
    )
    sp.add_argument("--speakers", type=_speaker_ids, help="speaker ids 0-11 to use, comma-separated (default all)")
    sp.add_argument(
        "--test-speakers",
        type=_speaker_ids,
        help="speakers only in the test split, comma-separated (default 4,5; '' for none)",
    )
    sp.add_argument("--channels", type=int, help="cochlea channels (default 700)")
    sp.add_argument("--duration", type=float, help="seconds per sample (default 1.0)")
    sp.add_argument("--seed", type=int)
    sp.add_argument(
        "--workers", type=int, help="parallel espeak-ng processes and analysis threads (default 2; 0: one per CPU)"
    )
    sp.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_data_speech)
    au = dsub.add_parser(
        "audio",
        help="mel-filterbank frames (graded input, frames layout) of Heidelberg Digits "
        "audio or of WAV/FLAC files with a labels CSV: OUT/train.h5, OUT/test.h5",
    )
    au.add_argument(
        "--in",
        dest="input",
        required=True,
        help="audio directory: audio/*.flac with train_filenames.txt "
        "and test_filenames.txt, or audio files with labels.csv (file,label[,speaker][,split])",
    )
    au.add_argument("--out", required=True, help="output directory")
    au.add_argument("--labels", help="labels CSV (default: DIR/labels.csv when DIR is not in the HD layout)")
    au.add_argument("--bands", type=int, help="mel bands (default 40, the paper's)")
    au.add_argument("--frames", type=int, help="frames per sample, cropped or zero-padded (default 100)")
    au.add_argument("--hop", type=float, help="frame step in seconds, the time step dt of training (default 0.01)")
    au.add_argument("--sample-rate", type=int, help="audio is resampled to this rate in Hz first (default 16000)")
    au.add_argument("--overwrite", action="store_true", help="replace existing train.h5/test.h5")
    au.add_argument("--json", action="store_true")
    au.set_defaults(func=cmd_data_audio)
    c = dsub.add_parser("check", help="validate an SHD-layout or frames-layout file and summarise it")
    c.add_argument("file")
    c.add_argument("--channels", type=int, help="number of input channels (default: file attribute, else 700)")
    c.add_argument("--dt", type=float, help="time step in seconds (default: 0.01, a frames file's own)")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_data_check)

    t = sub.add_parser("train", help="train a delay SNN (settings: see README or --config)")
    t.add_argument("--data", help="SHD- or frames-layout .h5 file, or a directory with train.h5 (required to train)")
    t.add_argument("--out", help="run directory (must not exist, unless --resume; required to train)")
    t.add_argument(
        "--preset",
        choices=["rawhd-paper"],
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
    t.add_argument("--delays", choices=["learned", "fixed-random", "none"])
    t.add_argument("--device", choices=["auto", "cpu", "cuda"])
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
        choices=["none", "deepr-rigl", "deepr-random"],
        help="dynamic pruning at a fixed budget: DEEP R removal with RigL or random regrowth "
        "(none: a fixed random mask)",
    )
    t.add_argument(
        "--structure",
        choices=["pairs", "taps"],
        help="candidates: (pre, post) pairs with a learned delay each, or (pre, post, delay) taps",
    )
    t.add_argument("--dale", action="store_true", help="one sign per presynaptic neuron (Dale's law; needs --prune)")
    t.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=cmd_train)

    f = sub.add_parser("finetune", help="quantisation-aware fine-tuning of a run for a target (new run directory)")
    f.add_argument("run_dir")
    f.add_argument("--target", required=True, help="built-in target name or a .toml path")
    f.add_argument("--epochs", type=int, default=5)
    f.add_argument("--lr", type=float, help="learning rate (default: the run's / 10)")
    f.add_argument("--out", help="new run directory (default: RUN_DIR-finetune-TARGET)")
    f.add_argument("--json", action="store_true")
    f.set_defaults(func=cmd_finetune)

    e = sub.add_parser("evaluate", help="accuracy of a run with rounded delays (and Gaussian kernels)")
    e.add_argument("run_dir")
    e.add_argument("--data", required=True, help="SHD-layout .h5 file, or a directory with test.h5")
    e.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    e.add_argument("--batch-size", type=int, default=256)
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=cmd_evaluate)

    g = sub.add_parser("targets", help="list the hardware target profiles and their limits")
    g.add_argument("--profile", help="show one profile: a built-in name or a path to your own .toml")
    g.add_argument("--json", action="store_true")
    g.set_defaults(func=cmd_targets)

    c = sub.add_parser("compile", help="compile a run into a quantised integer-delay DelayGraph for a target")
    c.add_argument("run_dir")
    c.add_argument("--target", required=True, help="built-in target name (see `delaynir targets`) or a .toml path")
    c.add_argument("--out", required=True, help="DelayGraph file to write (.h5)")
    c.add_argument(
        "--fit",
        default="error",
        choices=["error", "clip-delays", "relay-neurons"],
        help="what to do with delays longer than the target allows (default: error)",
    )
    c.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_compile)

    m = sub.add_parser("simulate", help="accuracy of a DelayGraph file in the reference simulator")
    m.add_argument("graph")
    m.add_argument("--data", required=True, help="SHD-layout .h5 file, or a directory with test.h5")
    m.add_argument("--batch-size", type=int, default=256)
    m.add_argument("--json", action="store_true")
    m.set_defaults(func=cmd_simulate)

    x = sub.add_parser("export", help=f"export a DelayGraph file as {', '.join(executors.export_formats())}")
    x.add_argument("file", help="DelayGraph .h5 (from `delaynir compile`)")
    x.add_argument("--format", required=True, choices=list(executors.export_formats()))
    x.add_argument("-o", "--out", required=True)
    x.add_argument("--overwrite", action="store_true")
    x.add_argument("--json", action="store_true")
    x.set_defaults(func=cmd_export)

    i = sub.add_parser("import", help="import a NIR file (ours or another tool's) as a DelayGraph")
    i.add_argument("file", help=".nir file")
    i.add_argument("--dt", type=float, help="time step in seconds (required unless the file is delaynir's)")
    i.add_argument("--out", required=True, help="DelayGraph .h5 to write")
    i.add_argument("--overwrite", action="store_true")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=cmd_import)

    im = sub.add_parser(
        "import-model",
        help="a PyTorch checkpoint of SNN-delays or the paper's code as a run "
        "directory (compile, export, verify it like a trained run)",
    )
    im.add_argument("checkpoint", help="state dict of tensors (torch.save(model.state_dict(), PATH))")
    im.add_argument("--from", dest="source", required=True, choices=["snn-delays", "paper"])
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
    im.add_argument("--overwrite", action="store_true", help="write into an existing non-empty --out")
    im.add_argument("--json", action="store_true")
    im.set_defaults(func=cmd_import_model)

    v = sub.add_parser("verify", help="run a model in the reference simulator and other simulators, compare")
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
    v.add_argument("--json", action="store_true")
    v.set_defaults(func=cmd_verify)

    b = sub.add_parser("bundle", help="hand-off bundle for a hardware team (or --check one)")
    b.add_argument("run_dir", nargs="?", help="run directory to compile and bundle")
    b.add_argument("--target", help="built-in target name or a .toml path")
    b.add_argument("--out", help="bundle directory to create (must not exist unless --overwrite)")
    b.add_argument(
        "--data",
        help="test data: SHD-layout .h5, or a directory with test.h5 (default: test.h5 beside the run's training file)",
    )
    b.add_argument("--samples", type=int, default=16, help="test-vector samples (default 16)")
    b.add_argument("--overwrite", action="store_true", help="replace an existing --out directory")
    b.add_argument(
        "--fit",
        default="error",
        choices=["error", "clip-delays", "relay-neurons"],
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
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=cmd_bundle)

    r = sub.add_parser("report", help="HTML report with figures of what a run learned")
    r.add_argument("run_dir")
    r.add_argument("--out", help="report directory (default: RUN_DIR/report)")
    r.add_argument("--overwrite", action="store_true", help="replace an existing report directory")
    r.add_argument(
        "--target",
        help="target for the hardware-fit table (default: the first installed chip target's profile, else int8)",
    )
    r.add_argument("--data", help="test data (default: test.h5 beside the run's training file)")
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=cmd_report)

    d = sub.add_parser("demo", help="the whole pipeline on built-in synthetic data")
    d.add_argument("--out", default="delaynir-demo", help="output directory (default: ./delaynir-demo)")
    d.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    d.add_argument("--epochs", type=int, help="override the demo's epochs per run")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--force", action="store_true", help="replace an earlier demo directory")
    d.add_argument("--target", default="int8", help="target to compile for (default: int8)")
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    tune_cpu_allocator()
    logging.basicConfig(
        level=logging.WARNING if args.quiet or getattr(args, "json", False) else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return args.func(args)
    except DelayNIRError as exc:
        print(f"delaynir: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("delaynir: interrupted", file=sys.stderr)
        return 130
