"""Spoken digits (espeak-ng): HD-layout audio, SHD-layout spikes, determinism, the cochlea front end, errors.

Tests that speak need espeak-ng: they skip without it, except under CI=true, where they fail
(.ci/run installs it: apt-get install -y espeak-ng).
"""

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import soundfile

from delaynir.cli import main
from delaynir.data import Cochlea, CochleaConfig, SpeechConfig, generate_speech, validate_file
from delaynir.data.shd import decode_keys
from delaynir.data.speech import (
    KEYS,
    SPEAKERS,
    HDName,
    SpeechToolError,
    hd_filename,
    parse_hd_filename,
    read_split,
    spikes_from_audio,
)
from delaynir.errors import ConfigError
from delaynir.export.executors import external
from delaynir.ir.graph_io import load_graph


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tiny(tiny_speech):
    """The session's tiny set (tests/conftest.py: tiny_speech)."""
    return tiny_speech


def test_cli_json_summary(tmp_path, capsys, need_espeak):
    need_espeak()
    code = main(
        [
            "-q",
            "data",
            "speech",
            "--out",
            str(tmp_path / "d"),
            "--trials",
            "1",
            "--speakers",
            "3,5",
            "--test-speakers",
            "5",
            "--channels",
            "100",
            "--json",
        ]
    )
    assert code == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["n_train"], info["n_test"]) == (20, 20)
    assert info["train_speakers"] == [3] and info["test_speakers"] == [5]
    assert info["n_channels"] == 100 and info["sample_rate"] == 16000 and info["duration"] == 1.0
    assert 200 < info["mean_spikes"] < 5000
    validate_file(tmp_path / "d" / "train.h5")


def test_hd_file_names_and_split_files_parse(tiny):
    train, test = read_split(tiny / "train_filenames.txt"), read_split(tiny / "test_filenames.txt")
    assert len(train) == 20 and len(test) == 60  # speaker 0: trial 0 train, trial 1 test; speaker 4: both test
    assert {(n.speaker, n.trial) for n in train} == {(0, 0)}
    assert {(n.speaker, n.trial) for n in test} == {(0, 1), (4, 0), (4, 1)}
    for names in (train, test):
        every_class = {(lang, d) for lang in ("english", "german") for d in range(10)}
        assert {(n.language, n.digit) for n in names} == every_class
    listed = {n.filename for n in train + test}
    assert listed == {p.name for p in (tiny / "audio").iterdir()}
    assert "lang-english_speaker-00_trial-0_digit-7.flac" in listed
    assert parse_hd_filename("audio/lang-german_speaker-04_trial-1_digit-3.flac") == HDName("german", 4, 1, 3)
    assert HDName("german", 4, 1, 3).label == 13 and HDName("english", 4, 1, 3).label == 3


def test_flac_files_are_readable_and_hold_the_word(tiny):
    path = tiny / "audio" / "lang-german_speaker-04_trial-0_digit-5.flac"
    info = soundfile.info(path)
    assert (info.samplerate, info.channels, info.format, info.subtype) == (16000, 1, "FLAC", "PCM_16")
    audio, rate = soundfile.read(path, dtype="float32")
    assert rate == 16000 and len(audio) >= 16000
    assert np.abs(audio).max() > 0.05  # speech, not only noise
    frames = np.abs(audio[: len(audio) // 160 * 160]).reshape(-1, 160).max(axis=1)  # 10 ms peaks
    assert frames.max() > 30 * np.median(frames[:2])  # the word is far above the leading background noise


def test_spike_files_follow_the_shd_layout_and_the_split(tiny):
    for split in ("train", "test"):
        path = tiny / f"{split}.h5"
        validate_file(path)
        names = read_split(tiny / f"{split}_filenames.txt")
        with h5py.File(path) as f:
            assert int(f.attrs["n_channels"]) == 700 and float(f.attrs["duration"]) == 1.0
            assert int(f.attrs["sample_rate"]) == 16000
            assert decode_keys(f["extra/keys"][()]) == list(KEYS) and len(KEYS) == 20
            assert f["labels"][()].tolist() == [n.label for n in names]
            assert f["extra/speaker"][()].tolist() == [n.speaker for n in names]
            counts = np.array([len(t) for t in f["spikes/times"]])
            assert f["spikes/units"].dtype.metadata["vlen"] == np.uint16
            times = np.concatenate(list(f["spikes/times"]))
        assert 500 < counts.mean() < 10000 and counts.min() > 100
        assert times.min() >= 0 and times.max() < 1.0
    with h5py.File(tiny / "train.h5") as f, h5py.File(tiny / "test.h5") as g:
        train_speakers, test_speakers = set(f["extra/speaker"][()].tolist()), set(g["extra/speaker"][()].tolist())
    assert 4 not in train_speakers and 4 in test_speakers and 0 in test_speakers


def test_flac_re_encodes_to_the_stored_spikes(tiny):
    """The spikes of a sample are the front end's on exactly the samples in its FLAC file."""
    names = read_split(tiny / "test_filenames.txt")
    with h5py.File(tiny / "test.h5") as f:
        config = SpeechConfig(**json.loads(f.attrs["speech_config"]))
        for i in (0, len(names) - 1):
            audio, _ = soundfile.read(tiny / "audio" / names[i].filename, dtype="float32")
            times, units = spikes_from_audio(audio, names[i], config)
            np.testing.assert_array_equal(times, f["spikes/times"][i])
            np.testing.assert_array_equal(units, f["spikes/units"][i])


def test_same_seed_same_bytes_and_overwrite_replaces_outputs(tmp_path, need_espeak):
    """Regenerating with --overwrite (and another worker count) gives byte-identical files; other files stay."""
    need_espeak()
    out = tmp_path / "d"
    config = {"trials": 1, "speakers": (1, 5), "test_speakers": (5,)}
    generate_speech(out, SpeechConfig(**config, workers=2))
    first = _snapshot(out)
    (out / "notes.txt").write_text("mine")
    generate_speech(out, SpeechConfig(**config, workers=1), overwrite=True)
    again = _snapshot(out)
    assert again.pop("notes.txt") == b"mine"
    assert again.keys() == first.keys() and all(again[k] == first[k] for k in first)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]  # no staging directory left behind
    with h5py.File(out / "train.h5") as f:
        other = SpeechConfig(**config, seed=1)
        name = read_split(out / "train_filenames.txt")[0]
        audio, _ = soundfile.read(out / "audio" / name.filename, dtype="float32")
        times, _ = spikes_from_audio(audio, name, other)
        assert not np.array_equal(times, f["spikes/times"][0])  # the seed matters


def test_existing_outputs_are_refused_without_overwrite(tmp_path, capsys):
    out = tmp_path / "d"
    out.mkdir()
    (out / "train.h5").write_bytes(b"precious")
    before = _snapshot(tmp_path)
    code = main(["data", "speech", "--out", str(out), "--trials", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "already exist" in err and "--overwrite" in err and "Traceback" not in err
    assert _snapshot(tmp_path) == before and sorted(p.name for p in tmp_path.iterdir()) == ["d"]


def test_missing_espeak_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(SpeechToolError, match="apt-get install espeak-ng"):
        generate_speech(tmp_path / "a", SpeechConfig(trials=1))
    code = main(["data", "speech", "--out", str(tmp_path / "b")])
    err = capsys.readouterr().err
    assert code == 2 and "espeak-ng" in err and "apt-get install espeak-ng" in err
    assert not any(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize("tone_hz", [400.0, 1000.0, 3000.0])
def test_a_tone_excites_the_channels_near_its_frequency(tone_hz):
    config = CochleaConfig()
    cochlea = Cochlea(config, 16000)
    t = np.arange(16000) / 16000
    ramp = np.clip(np.minimum(t - 0.2, 0.7 - t) / 0.01, 0, 1)  # 10 ms on/off ramps, 0.2-0.7 s
    tone = (0.3 * ramp * np.sin(2 * np.pi * tone_hz * t)).astype(np.float32)
    times, units = cochlea.spikes(tone, 1.0, np.random.default_rng(0))
    freqs = config.frequencies()
    assert len(times) > 300
    counts = np.bincount(units, minlength=config.n_channels)
    centre = freqs[int(np.round(np.average(np.arange(config.n_channels), weights=counts)))]
    assert abs(np.log2(centre / tone_hz)) < 0.25  # within a quarter octave
    far = (freqs < tone_hz / 2) | (freqs > tone_hz * 2)
    assert counts[far].sum() <= 0.01 * counts.sum()
    assert times.min() > 0.18 and times.max() < 0.75  # only while the tone sounds
    assert np.all(np.diff(times) >= 0)


def test_encoder_rate_follows_the_lif_equation():
    """Constant drive I, no noise or adaptation: rate = 1 / (refractory + tau ln(I / (I - 1))), up to frames."""
    config = CochleaConfig(n_channels=3, noise=0.0, adapt=0.0)
    drives = np.broadcast_to(np.array([0.9, 1.5, 3.0], np.float32), (1, 1000, 3))
    _times, units = Cochlea(config, 16000).encode(drives)[0]
    rates = np.bincount(units, minlength=3)  # spikes in 1 s
    assert rates[0] == 0
    for channel, drive in ((1, 1.5), (2, 3.0)):
        expected = 1 / (config.refractory + config.tau * np.log(drive / (drive - 1)))
        assert 0.8 * expected <= rates[channel] <= 1.05 * expected


def test_config_errors_are_clear():
    with pytest.raises(ConfigError, match="test_trials"):
        SpeechConfig(trials=2, test_trials=2)
    with pytest.raises(ConfigError, match="speaker ids"):
        SpeechConfig(speakers=(0, 12))
    with pytest.raises(ConfigError, match="training split would be empty"):
        SpeechConfig(speakers=(4, 5))
    with pytest.raises(ConfigError, match="whole number of samples"):
        SpeechConfig(sample_rate=22050)  # 2 ms is not a whole number of samples at 22050 Hz
    with pytest.raises(ConfigError, match="not a Heidelberg Digits file name"):
        parse_hd_filename("speaker-03_digit-7.flac")
    assert hd_filename("english", 3, 0, 7) == "lang-english_speaker-03_trial-0_digit-7.flac"
    assert len(SPEAKERS) == 12 and all(
        s.english_voice.startswith("en") and s.german_voice.startswith("de") for s in SPEAKERS
    )


def test_demo_trains_on_spoken_digits_and_skips_them_without_espeak(tmp_path, monkeypatch, need_espeak):
    """The demo's speech leg reports test and unseen-speaker accuracy, or says why it was skipped."""
    from delaynir.handoff import demo

    settings = dict(demo.DEMO_SETTINGS, hidden=[8], epochs=1, device="cpu", val_fraction=0.5, seed=0)
    monkeypatch.setattr(demo, "DEMO_SPEECH", SpeechConfig(speakers=(0, 1, 4), test_speakers=(4,), trials=2))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    skipped = demo._speech_run(tmp_path / "without", settings, progress=False)
    assert "espeak-ng" in skipped["skipped"] and not (tmp_path / "without" / "runs").exists()
    monkeypatch.undo()
    need_espeak()
    monkeypatch.setattr(demo, "DEMO_SPEECH", SpeechConfig(speakers=(0, 1, 4), test_speakers=(4,), trials=2))
    result = demo._speech_run(tmp_path / "with", settings, progress=False)
    assert result["unseen_speakers"]["speakers"] == [4] and result["unseen_speakers"]["n"] == 40
    assert 0 <= result["test_accuracy"] <= 1 and (tmp_path / "with" / "runs" / "speech" / "model.pt").is_file()
    graded = demo._graded_run(tmp_path / "with", settings, "int8", progress=False)  # the same recordings as frames
    assert graded["unseen_speakers"]["n"] == 40 and 0 <= graded["compiled"]["test_accuracy"] <= 1
    assert (tmp_path / "with" / "frames" / "test.h5").is_file() and (tmp_path / "with" / "runs" / "graded").is_dir()
    # every simulator but NEST, whose PyNN file takes spikes only and refuses graded input (FileFormat.partial)
    expected = set(external(load_graph(graded["compiled"]["graph"]))) - {"nest"}
    assert set(graded["verification"].simulators) == expected
    for sim in graded["verification"].simulators.values():  # graded input, 8-bit codes: spike-exact everywhere
        assert sim["prediction_agreement"] == 1.0 and set(sim["spike_agreement"].values()) == {1.0}
