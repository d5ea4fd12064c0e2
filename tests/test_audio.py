"""Audio → filterbank frames (delaynir.data.features, .audio, .frames) and the frames layout read like a spike file."""

import csv
import json

import h5py
import numpy as np
import pytest
import soundfile

from delaynir.cli import main
from delaynir.data.audio import AudioFormatError, convert_audio
from delaynir.data.features import FeatureConfig, hz_to_mel, log_mel, mel_filterbank, mel_to_hz, normalise
from delaynir.data.frames import FramesDataset, is_frames_file, write_frames_file
from delaynir.data.speech import read_split
from delaynir.errors import ConfigError, DataFormatError
from delaynir.train.config import make_config
from delaynir.train.run_dir import open_dataset

RATE = 16000


def _tone(hz: float, seconds: float = 0.5, rate: int = RATE, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return amplitude * np.sin(2 * np.pi * hz * t)


@pytest.fixture(scope="module")
def tone_dir(tmp_path_factory):
    """Six WAV/FLAC tones with labels.csv: classes 0 (300 Hz) and 1 (2 kHz), a 44.1 kHz file, a test split."""
    root = tmp_path_factory.mktemp("tones")
    rows = []
    for k, (hz, label, split, rate, ext) in enumerate(
        [
            (300, 0, "train", RATE, "wav"),
            (2000, 1, "train", RATE, "flac"),
            (310, 0, "train", 44100, "wav"),
            (1900, 1, "train", RATE, "wav"),
            (290, 0, "test", RATE, "wav"),
            (2100, 1, "test", RATE, "wav"),
        ]
    ):
        name = f"clip{k}.{ext}"
        soundfile.write(root / name, _tone(hz, 0.3 + 0.1 * k, rate, 0.1 + 0.1 * k), rate)
        rows.append({"file": name, "label": label, "speaker": k % 2, "split": split})
    with open(root / "labels.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, ["file", "label", "speaker", "split"])
        writer.writeheader()
        writer.writerows(rows)
    return root


def test_mel_scale_and_filterbank():
    assert hz_to_mel(700.0) == pytest.approx(2595 * np.log10(2))
    assert mel_to_hz(hz_to_mel(1234.5)) == pytest.approx(1234.5)
    bank = mel_filterbank(FeatureConfig())
    assert bank.shape == (40, 257) and bank.min() >= 0 and bank.max() <= 1
    assert (bank.sum(axis=1) > 0).all()  # no empty band at 16 kHz / 512 bins
    assert np.argmax(bank.sum(axis=0) > 0) <= 1  # the bank starts at f_min = 0


def test_a_tone_peaks_in_its_band_and_db_is_relative_to_the_file():
    config = FeatureConfig()
    db = log_mel(_tone(1000), RATE, config)
    assert db.shape == (48, 40)  # 1 + (8000 − 400) // 160 frames, under n_frames
    assert db.max() == 0.0 and db.min() >= -100.0
    centres = mel_to_hz(np.linspace(hz_to_mel(0), hz_to_mel(8000), 42))[1:-1]
    assert np.argmax(db[20]) == np.argmin(np.abs(centres - 1000))
    assert np.allclose(log_mel(3 * _tone(1000), RATE, config), db)  # a gain changes nothing: dB re the file's max
    long = log_mel(_tone(1000, seconds=2.0), RATE, config)
    assert long.shape == (100, 40)  # cropped to n_frames


def test_pre_emphasis_lifts_high_frequencies():
    flat = FeatureConfig(preemphasis=0.0)
    mix = _tone(200) + _tone(4000)
    bands = np.argmin(np.abs(mel_to_hz(np.linspace(0, hz_to_mel(8000), 42))[1:-1][:, None] - [200, 4000]), axis=0)
    gap_flat = np.subtract(*log_mel(mix, RATE, flat)[20, bands])
    gap_paper = np.subtract(*log_mel(mix, RATE, FeatureConfig())[20, bands])
    assert gap_paper < gap_flat - 10  # 0.95 pre-emphasis: ≈ +16 dB at 4 kHz relative to 200 Hz


def test_resampling_keeps_the_tone_in_its_band():
    config = FeatureConfig()
    assert np.argmax(log_mel(_tone(2000, rate=44100), 44100, config)[20]) == np.argmax(
        log_mel(_tone(2000), RATE, config)[20]
    )


def test_normalise_shifts_scales_clips_and_pads():
    config = FeatureConfig(n_frames=5, n_bands=2)
    db = np.array([[0.0, -10.0], [-40.0, -90.0]])
    x = normalise(db, -80.0, config)
    assert x.dtype == np.float32 and x.shape == (5, 2)
    assert np.allclose(x[:2], np.array([[80, 70], [40, 0]]) * 0.00099 * 20) and not x[2:].any()


def test_feature_settings_are_validated():
    with pytest.raises(ConfigError, match="n_fft"):
        FeatureConfig(frame_length=0.05).validate()
    with pytest.raises(ConfigError, match="n_bands"):
        FeatureConfig(n_bands=0).validate()


def test_csv_directory_to_frames_with_training_statistics(tone_dir, tmp_path):
    summary = convert_audio(tone_dir, tmp_path / "out", FeatureConfig(n_frames=40))
    config = FeatureConfig(n_frames=40)
    train_db = [
        log_mel(*soundfile.read(tone_dir / f"clip{k}.{ext}"), config)
        for k, ext in enumerate(["wav", "flac", "wav", "wav"])
    ]
    minimum = min(d.min() for d in train_db)
    assert summary["features"]["shift_db"] == pytest.approx(minimum)
    with h5py.File(tmp_path / "out" / "test.h5") as f:
        assert f.attrs["layout"] == "frames" and f.attrs["dt"] == 0.01
        assert json.loads(f.attrs["features"])["shift_db"] == pytest.approx(minimum)  # the *training* minimum
        test_db = log_mel(*soundfile.read(tone_dir / "clip4.wav"), config)
        assert np.allclose(f["frames"][0], normalise(test_db, minimum, config))
        assert f["labels"][()].tolist() == [0, 1] and f["extra/speaker"][()].tolist() == [0, 1]
        assert [n.decode() for n in f["extra/files"][()]] == ["clip4.wav", "clip5.wav"]
    train = FramesDataset(tmp_path / "out" / "train.h5", dt=0.01)
    assert len(train) == 4 and train.n_inputs == 40 and train.n_steps == 40 and train.graded
    assert train.value_range()[0] == 0.0 and train.value_range()[1] <= -minimum * config.scale + 1e-6


def test_hd_layout_from_the_speech_generator(tiny_speech, tmp_path):
    out = tmp_path / "frames"
    assert main(["-q", "data", "audio", "--in", str(tiny_speech), "--out", str(out), "--frames", "60"]) == 0
    names = read_split(tiny_speech / "test_filenames.txt")
    with h5py.File(out / "test.h5") as f:
        assert f["frames"].shape == (len(names), 60, 40)
        assert f["labels"][()].tolist() == [n.label for n in names]
        assert f["extra/speaker"][()].tolist() == [n.speaker for n in names]
        assert f["extra/keys"][10] == b"null"
    assert is_frames_file(out / "train.h5") and not is_frames_file(tiny_speech / "train.h5")
    dataset = open_dataset(out / "train.h5", make_config({}))
    x, _y = dataset[0]
    assert x.shape == (60, 40) and dataset.n_classes == 20 and dataset.speakers.tolist() == [0] * 20


def test_a_corrupt_audio_file_is_one_clear_error_and_nothing_is_written(tone_dir, tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    for path in tone_dir.iterdir():
        (bad / path.name).write_bytes(path.read_bytes())
    (bad / "clip3.wav").write_bytes(b"RIFF\x00\x00not really audio")
    assert main(["data", "audio", "--in", str(bad), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "clip3.wav" in err and "cannot be decoded" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    (bad / "clip3.wav").unlink()
    with pytest.raises(AudioFormatError, match="clip3.wav"):
        convert_audio(bad, tmp_path / "out")


def test_wrong_layouts_are_clear_errors(tone_dir, tmp_path):
    with pytest.raises(AudioFormatError, match="neither the Heidelberg Digits audio layout"):
        convert_audio(tmp_path, tmp_path / "out")
    (tmp_path / "labels.csv").write_text("name,class\na.wav,1\n")
    with pytest.raises(AudioFormatError, match="columns file and label"):
        convert_audio(tmp_path, tmp_path / "out")
    (tmp_path / "train_filenames.txt").write_text("not-an-hd-name.flac\n")
    (tmp_path / "test_filenames.txt").write_text("")
    with pytest.raises(AudioFormatError, match="line 1"):
        convert_audio(tmp_path, tmp_path / "out", labels=None)
    convert_audio(tone_dir, tmp_path / "done")
    with pytest.raises(ConfigError, match="--overwrite"):
        convert_audio(tone_dir, tmp_path / "done")


def test_malformed_frames_files_and_a_wrong_dt(tmp_path):
    path = tmp_path / "f.h5"
    write_frames_file(path, np.zeros((3, 5, 2)), [0, 1, 0], dt=0.01)
    with pytest.raises(ConfigError, match="dt = 0.01"):
        FramesDataset(path, dt=0.001)
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        f.attrs["layout"] = "frames"
        f["frames"] = np.zeros((3, 5))
        f["labels"] = np.zeros(2, dtype=np.int64)
    with pytest.raises(DataFormatError, match="samples, steps, channels") as info:
        FramesDataset(tmp_path / "bad.h5", dt=0.01)
    assert "dt" in str(info.value)  # every problem at once
