"""``delaynir data``: generate the synthetic task or spoken digits, convert audio to frames, check a file."""

from __future__ import annotations

import argparse
import dataclasses

from delaynir.cli.common import add_overwrite, command, progress, show


def cmd_synth(args) -> int:
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
    show(
        args,
        {"train": str(train_path), "test": str(test_path), "config": dataclasses.asdict(config)},
        f"wrote {train_path} ({config.n_train} samples) and {test_path} ({config.n_test} samples): "
        f"{config.n_classes} classes, {config.n_channels} channels, {config.duration} s",
    )
    return 0


def _speaker_ids(text: str) -> tuple[int, ...]:
    """'0,1,4' -> (0, 1, 4); an empty string -> ()."""
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated speaker ids such as 0,1,4, got {text!r}") from None


def cmd_speech(args) -> int:
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
    summary = generate_speech(args.out, config, overwrite=args.overwrite, progress=progress())
    show(
        args,
        summary.as_dict(),
        f"wrote {summary.audio} ({summary.n_train + summary.n_test} FLAC files, {summary.sample_rate} Hz), "
        f"{summary.train} ({summary.n_train} samples, speakers {summary.train_speakers}) and {summary.test} "
        f"({summary.n_test} samples, speakers {summary.test_speakers}): {summary.n_channels} channels, "
        f"{summary.duration} s, {summary.mean_spikes:.0f} spikes per sample on average, {summary.seconds:.0f} s",
    )
    return 0


def cmd_audio(args) -> int:
    from delaynir.data.audio import convert_audio
    from delaynir.data.features import FeatureConfig

    fields = {"n_bands": args.bands, "n_frames": args.frames, "hop": args.hop, "sample_rate": args.sample_rate}
    config = FeatureConfig(**{k: v for k, v in fields.items() if v is not None})
    summary = convert_audio(
        args.input, args.out, config, labels=args.labels, overwrite=args.overwrite, progress=progress()
    )
    written = ", ".join(
        f"{summary[s]['path']} ({summary[s]['samples']} samples)" for s in ("train", "test") if s in summary
    )
    show(
        args,
        summary,
        f"wrote {written}: {config.n_bands} mel bands x {config.n_frames} frames of {config.hop} s "
        f"({summary['layout']} layout), shifted by the training minimum {summary['features']['shift_db']:.1f} dB",
    )
    return 0


def cmd_check(args) -> int:
    from delaynir.common.h5 import sealed
    from delaynir.data import SpikeDataset
    from delaynir.data.frames import FramesDataset, is_frames_file

    graded = is_frames_file(args.file)
    ds: SpikeDataset | FramesDataset
    if graded:
        ds = FramesDataset(args.file, dt=args.dt if args.dt is not None else _frame_dt(args.file))
    else:
        ds = SpikeDataset(
            args.file, dt=0.01 if args.dt is None else args.dt, n_steps=1, pool=1, n_channels=args.channels, cache=False
        )
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
        "content_digest": "matches" if sealed(args.file) else "none",  # a mismatch was refused on opening
    }
    digest = (
        "its content digest matches"
        if result["content_digest"] == "matches"
        else "no content digest (not written by delaynir, or by an earlier version)"
    )
    show(
        args,
        result,
        f"{args.file}: valid {'frames' if graded else 'SHD'} layout, {len(ds)} samples, {ds.n_classes} classes, "
        f"{ds.n_channels} channels" + (f", {len(speakers)} speakers" if speakers else "") + f"; {digest}",
    )
    return 0


def _frame_dt(path) -> float:
    from delaynir.data.frames import DT_ATTR
    from delaynir.data.shd import spike_file

    with spike_file(path) as f:
        return float(f.attrs.get(DT_ATTR, 0.01))


def register(sub) -> None:
    data = sub.add_parser("data", help="spike data: generate the synthetic task, check a file")
    dsub = data.add_subparsers(dest="data_command", required=True)

    s = command(dsub, cmd_synth, "synth", help="write the synthetic timing task as train.h5 and test.h5 (SHD layout)")
    s.add_argument("--out", required=True, help="output directory")
    s.add_argument("--channels", type=int)
    s.add_argument("--classes", type=int)
    s.add_argument("--train", type=int, help="training samples")
    s.add_argument("--test", type=int, help="test samples")
    s.add_argument("--duration", type=float, help="seconds per sample")
    s.add_argument("--spread", type=int, help="steps from the first to the last band of a pattern")
    s.add_argument("--groups", type=int, help="channel bands whose firing order defines a class")
    s.add_argument("--seed", type=int)
    add_overwrite(s, "replace existing train.h5/test.h5")

    sp = command(
        dsub,
        cmd_speech,
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
    add_overwrite(sp, "replace existing outputs")

    au = command(
        dsub,
        cmd_audio,
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
    add_overwrite(au, "replace existing train.h5/test.h5")

    c = command(dsub, cmd_check, "check", help="validate an SHD-layout or frames-layout file and summarise it")
    c.add_argument("file")
    c.add_argument("--channels", type=int, help="number of input channels (default: file attribute, else 700)")
    c.add_argument("--dt", type=float, help="time step in seconds (default: 0.01, a frames file's own)")
