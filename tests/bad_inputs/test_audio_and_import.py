"""Bad audio data sets (`data audio`), frames files (`data check`, `train`) and foreign checkpoints (`import-model`)."""

from __future__ import annotations

import io
from pathlib import Path

import h5py
import numpy as np
import pytest
import soundfile
import torch
from conftest import refused, unsealed

from delaynir.data.frames import write_frames_file


def _audio_dir(root: Path) -> Path:
    """Two tones with labels.csv, one per split."""
    root.mkdir()
    t = np.arange(4000) / 16000
    for k in range(2):
        soundfile.write(root / f"a{k}.wav", 0.3 * np.sin(2 * np.pi * (300 + 900 * k) * t), 16000)
    (root / "labels.csv").write_text("file,label,split\na0.wav,0,train\na1.wav,1,test\n")
    return root


def test_an_undecodable_audio_file(tmp_path):
    root = _audio_dir(tmp_path / "in")
    (root / "a1.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    refused(
        ["data", "audio", "--in", root, "--out", tmp_path / "out"],
        names="a1.wav",
        says="cannot be decoded",
        inputs=[root],
        outputs=[tmp_path / "out" / "train.h5", tmp_path / "out" / "test.h5"],
    )


def test_an_empty_audio_file(tmp_path):
    root = _audio_dir(tmp_path / "in")
    soundfile.write(root / "a0.wav", np.zeros(0), 16000)
    refused(
        ["data", "audio", "--in", root, "--out", tmp_path / "out"],
        names="a0.wav",
        says="no audio samples",
        inputs=[root],
        outputs=[tmp_path / "out" / "train.h5"],
    )


def test_a_directory_in_neither_layout(tmp_path):
    (tmp_path / "in").mkdir()
    refused(
        ["data", "audio", "--in", tmp_path / "in", "--out", tmp_path / "out"],
        names="in",
        says="neither the Heidelberg Digits audio layout",
        outputs=[tmp_path / "out"],
    )


def test_a_split_file_with_a_foreign_name(tmp_path):
    root = tmp_path / "hd"
    (root / "audio").mkdir(parents=True)
    (root / "train_filenames.txt").write_text("speaker-3-digit-7.flac\n")
    (root / "test_filenames.txt").write_text("")
    refused(
        ["data", "audio", "--in", root, "--out", tmp_path / "out"],
        names="train_filenames.txt",
        says=["line 1", "not a Heidelberg Digits file name"],
        inputs=[root],
        outputs=[tmp_path / "out"],
    )


def test_a_labels_csv_without_its_columns(tmp_path):
    root = _audio_dir(tmp_path / "in")
    (root / "labels.csv").write_text("path;class\na0.wav;0\n")
    refused(
        ["data", "audio", "--in", root, "--out", tmp_path / "out"],
        names="labels.csv",
        says="columns file and label",
        inputs=[root],
        outputs=[tmp_path / "out"],
    )


def test_a_frames_file_without_its_time_step(tmp_path):
    path = tmp_path / "frames.h5"
    write_frames_file(path, np.zeros((2, 5, 3)), [0, 1], dt=0.01)
    with h5py.File(unsealed(path), "r+") as f:
        del f.attrs["dt"]
    refused(["data", "check", path], names="frames.h5", says="'dt'", inputs=[path])
    refused(
        ["train", "--data", path, "--out", tmp_path / "run"],
        names="frames.h5",
        says="frames layout",
        inputs=[path],
        outputs=[tmp_path / "run"],
    )


@pytest.mark.parametrize(
    "case, frames, features, says",
    [
        ("no frames", np.zeros((2, 0, 3)), None, "0 steps of 3 channels"),
        ("no bands", np.zeros((2, 5, 0)), None, "5 steps of 0 channels"),
        ("features not JSON", np.zeros((2, 5, 3)), "{not json", "'features' must be a JSON object"),
        ("features a list", np.zeros((2, 5, 3)), "[1, 2]", "'features' must be a JSON object"),
    ],
)
def test_a_frames_file_that_is_empty_or_carries_unreadable_settings(tmp_path, case, frames, features, says):
    """data check called these valid, and train crashed on them (empty) or every command did (features)."""
    path = tmp_path / "frames.h5"
    with h5py.File(path, "w") as f:
        f.attrs.update({"layout": "frames", "dt": 0.01})
        f["frames"], f["labels"] = frames, np.array([0, 1])
        if features is not None:
            f.attrs["features"] = features
    refused(["data", "check", path], names="frames.h5", says=says, inputs=[path])
    refused(
        ["train", "--data", path, "--out", tmp_path / "run"],
        names="frames.h5",
        says=says,
        inputs=[path],
        outputs=[tmp_path / "run"],
    )


def _frames_dir(root: Path) -> Path:
    write_frames_file(root / "train.h5", np.random.default_rng(0).random((6, 10, 4)), [0, 1, 2] * 2, dt=0.01)
    return root


class _Payload:
    """Unpickling this would write a marker file: a checkpoint must never run it."""

    marker: Path

    def __reduce__(self):
        return Path.write_text, (self.marker, "the payload ran")


def test_a_checkpoint_that_needs_unpickling(tmp_path):
    _Payload.marker = tmp_path / "PWNED"
    buffer = io.BytesIO()
    torch.save({"model.0.weight": torch.zeros(3, 4, 1), "hook": _Payload()}, buffer)
    ckpt = tmp_path / "snn_delays.pt"
    ckpt.write_bytes(buffer.getvalue())
    refused(
        ["import-model", ckpt, "--from", "snn-delays", "--out", tmp_path / "run", "--data", _frames_dir(tmp_path)],
        names="snn_delays.pt",
        says="re-save it as a plain state dict",
        inputs=[ckpt],
        outputs=[tmp_path / "run"],
    )
    assert not _Payload.marker.exists()


def test_a_checkpoint_with_unexpected_keys(tmp_path):
    state = {
        "model.0.weight": torch.zeros(3, 4, 1),
        "model.0.P": torch.zeros(1, 3, 4, 1),
        "model.0.SIG": torch.zeros(1, 3, 4, 1),
        "model.1.w": torch.zeros(1),
    }
    ckpt = tmp_path / "plif.pt"
    torch.save(state, ckpt)
    refused(
        ["import-model", ckpt, "--from", "snn-delays", "--out", tmp_path / "run", "--data", _frames_dir(tmp_path)],
        names="plif.pt",
        says="unexpected keys model.1.w",
        inputs=[ckpt],
        outputs=[tmp_path / "run"],
    )


@pytest.mark.parametrize("tensor", ["weight", "P", "SIG"])
def test_a_checkpoint_with_nan_weights_or_delay_positions(tmp_path, tensor):
    """NaN weights or positions used to import; compile and evaluate then failed or misled."""
    state = {
        "model.0.weight": torch.zeros(3, 4, 1),
        "model.0.P": torch.zeros(1, 3, 4, 1),
        "model.0.SIG": torch.ones(1, 3, 4, 1),
        "model.1.weight": torch.zeros(2, 3, 1),
        "model.1.P": torch.zeros(1, 2, 3, 1),
        "model.1.SIG": torch.ones(1, 2, 3, 1),
    }
    state[f"model.0.{tensor}"].view(-1)[1] = float("nan")
    ckpt = tmp_path / "diverged.pt"
    torch.save(state, ckpt)
    refused(
        ["import-model", ckpt, "--from", "snn-delays", "--out", tmp_path / "run", "--data", _frames_dir(tmp_path)],
        names="diverged.pt",
        says=[f"non-finite values (NaN or inf) in model.0.{tensor} (1)", "must be finite"],
        inputs=[ckpt],
        outputs=[tmp_path / "run"],
    )


@pytest.mark.parametrize("under", [False, True], ids=["a file", "under a file"])
@pytest.mark.parametrize("command", ["data audio", "import-model"])
def test_an_output_directory_that_is_a_file_or_lies_under_one(tmp_path, command, under):
    """Both commands did all their work first and then died with a traceback in mkdir."""
    blocker = tmp_path / "taken"
    blocker.write_text("a user's file")
    out = blocker / "out" if under else blocker
    if command == "data audio":
        argv = ["data", "audio", "--in", _audio_dir(tmp_path / "audio"), "--out", out]
    else:
        ckpt = tmp_path / "model.pt"
        torch.save({"model.0.weight": torch.zeros(3, 4, 1)}, ckpt)
        argv = ["import-model", ckpt, "--from", "snn-delays", "--out", out, "--data", _frames_dir(tmp_path)]
    refused(
        argv,
        names="taken",
        says="is a file, not a directory" if under else "exists and is not a directory",
        inputs=[blocker],
    )
