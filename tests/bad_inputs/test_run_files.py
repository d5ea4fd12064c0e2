"""Bad checkpoints and models (`evaluate`, `train --resume`) and bad output paths (every command that writes)."""

from __future__ import annotations

import io
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from conftest import refused

from delaynir.train import checkpoints


class _Payload:
    """Unpickling this would write a marker file: a checkpoint must never run it."""

    marker: Path

    def __reduce__(self):
        return Path.write_text, (self.marker, "the payload ran")


def _hostile(path: Path) -> bytes:
    _Payload.marker = path.parent / "PWNED"
    buffer = io.BytesIO()
    torch.save({"format_version": 1, "model": _Payload()}, buffer)
    return buffer.getvalue()


def _edited(change, keep_digest=False):
    """Bytes of the original payload after ``change(payload)``, as another tool would write it (without the
    content digest), or with the digest of the original kept."""

    def make(data: bytes, path: Path) -> bytes:
        payload = torch.load(io.BytesIO(data), weights_only=True)
        if not keep_digest:
            del payload[checkpoints.DIGEST]
        change(payload)
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        return buffer.getvalue()

    return make


def _pop(*keys):
    def change(payload):
        target = payload
        for key in keys[:-1]:
            target = target[key]
        del target[keys[-1]]

    return change


def _set(key, value):
    return lambda payload: payload.__setitem__(key, value)


def _shrink_first_weight(payload):
    name = next(k for k, v in payload["model"].items() if v.dim() == 2)
    payload["model"][name] = payload["model"][name][:1]


# case id: (bytes of the file from (original bytes, path), text the message must contain)
PT_FILES = {
    "empty": (lambda data, path: b"", "cannot be loaded safely"),
    "truncated": (lambda data, path: data[: len(data) // 2], "cannot be loaded safely"),
    "random bytes": (lambda data, path: bytes(range(256)) * 8, "cannot be loaded safely"),
    "plain pickle": (lambda data, path: pickle.dumps({"format_version": 1}), "cannot be loaded safely"),
    "hostile pickle": (lambda data, path: _hostile(path), "cannot be loaded safely"),
    "a list": (lambda data, path: _to_bytes([1, 2]), "is not a delaynir checkpoint"),
    "other format version": (_edited(_set("format_version", 7)), "is not a delaynir checkpoint of format version 1"),
    "no config": (_edited(_pop("config")), "config is missing"),
    "no data": (_edited(_pop("data")), "data is missing"),
    "no model": (_edited(_pop("model")), "model is missing"),
    "config a list": (_edited(_set("config", [1])), "config is a list, expected dict"),
    "data without n_inputs": (_edited(_pop("data", "n_inputs")), "data.n_inputs is missing"),
    "epoch text": (_edited(_set("epoch", "one")), "epoch is a str, expected int"),
    "unknown setting": (_edited(lambda p: p["config"].update(colour="red")), "unknown setting(s) colour"),
    "weight grid without q_max": (
        _edited(_set("weight_grid", {"q_min": -128, "step": 1, "per_output_channel": True})),
        "weight_grid.q_max is missing",
    ),
    "weight grid a list": (_edited(_set("weight_grid", [-128, 127])), "weight_grid is a list, expected dict or None"),
    "number format without decay": (
        _edited(_set("number_format", {"threshold_bits": 17})),
        "number_format.decay is missing",
    ),
    "weights of another shape": (_edited(_shrink_first_weight), "does not match"),
    "a weight changed": (
        _edited(lambda p: next(iter(p["model"].values())).add_(1), keep_digest=True),
        "does not match its SHA-256",
    ),
}


def _to_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


@pytest.fixture
def run_copy(small_run, tmp_path) -> Path:
    return shutil.copytree(small_run, tmp_path / "run")


@pytest.mark.parametrize("case", PT_FILES, ids=list(PT_FILES))
def test_bad_model_file(run_copy, small_run, case):
    make, says = PT_FILES[case]
    path = run_copy / checkpoints.MODEL
    path.write_bytes(make(path.read_bytes(), path))
    refused(["evaluate", run_copy, "--data", small_run.parent / "data"], names=path, says=says, inputs=[run_copy])
    assert not (run_copy.parent / "PWNED").exists()


@pytest.mark.parametrize("case", PT_FILES, ids=list(PT_FILES))
def test_bad_checkpoint(run_copy, small_run, case):
    make, says = PT_FILES[case]
    path = run_copy / checkpoints.CHECKPOINT
    path.write_bytes(make(path.read_bytes(), path))
    refused(
        ["train", "--data", small_run.parent / "data", "--out", run_copy, "--resume"],
        names=path,
        says=says,
        inputs=[run_copy],
    )
    assert not (run_copy.parent / "PWNED").exists()


@pytest.mark.parametrize(
    "content, says",
    [
        ("{broken\n", "line 1 is not JSON"),
        ("[1]\n", "line 1 is not an epoch"),
        (b"\xff\xfe", "cannot be read as UTF-8"),
    ],
    ids=["not JSON", "a list", "binary"],
)
def test_bad_metrics_file(run_copy, tmp_path, content, says):
    path = run_copy / checkpoints.METRICS
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    refused(
        ["report", run_copy, "--out", tmp_path / "report"],
        names=path,
        says=says,
        inputs=[run_copy],
        outputs=[tmp_path / "report"],
    )


def test_a_directory_as_model_file(run_copy, small_run):
    (run_copy / checkpoints.MODEL).unlink()
    (run_copy / checkpoints.MODEL).mkdir()
    refused(
        ["evaluate", run_copy, "--data", small_run.parent / "data"],
        names=checkpoints.MODEL,
        says="does not exist",
        inputs=[run_copy],
    )


# ----------------------------------------------------------------------------- output paths


@pytest.fixture
def a_file(tmp_path) -> Path:
    path = tmp_path / "notes.txt"
    path.write_text("mine")
    return path


@pytest.mark.parametrize("under", [False, True], ids=["a file", "under a file"])
def test_train_out_is_a_file(tiny_data, a_file, under):
    out = a_file / "run" if under else a_file
    refused(
        ["train", "--data", tiny_data, "--out", out],
        names=a_file,
        says="is a file" if under else "is not a directory",
        inputs=[a_file],
    )


def test_compile_over_a_directory_with_overwrite(small_run, tmp_path):
    out = tmp_path / "model.h5"
    (out / "inside").mkdir(parents=True)
    refused(
        ["compile", small_run, "--target", "int8", "--out", out, "--overwrite"],
        names=out,
        says="is a directory, but the output is a file",
        inputs=[out],
    )


def test_compile_refuses_to_overwrite(small_run, a_file):
    refused(
        ["compile", small_run, "--target", "int8", "--out", a_file], names=a_file, says="--overwrite", inputs=[a_file]
    )


@pytest.mark.parametrize("fmt", ["nir", "onnx"])
def test_export_under_a_file(graph_file, a_file, fmt):
    out = a_file / "model.out"
    refused(
        ["export", graph_file, "--format", fmt, "-o", out],
        names=a_file,
        says="is a file, not a directory",
        inputs=[graph_file, a_file],
    )


@pytest.mark.parametrize("fmt", ["nir", "onnx"])
def test_export_over_a_directory(graph_file, tmp_path, fmt):
    refused(
        ["export", graph_file, "--format", fmt, "-o", tmp_path, "--overwrite"],
        names=tmp_path,
        says="is a directory",
        inputs=[graph_file, tmp_path],
    )


def test_import_under_a_file(nir_file, a_file):
    refused(
        ["import", nir_file, "--out", a_file / "g.h5"],
        names=a_file,
        says="is a file, not a directory",
        inputs=[nir_file, a_file],
    )


@pytest.mark.parametrize("under", [False, True], ids=["a file", "under a file"])
def test_synth_out_is_a_file(a_file, under):
    out = a_file / "data" if under else a_file
    refused(["data", "synth", "--out", out, "--train", "4", "--test", "2"], names=a_file, says="is", inputs=[a_file])


@pytest.mark.parametrize("under", [False, True], ids=["a file", "under a file"])
def test_demo_out_is_a_file(a_file, under):
    out = a_file / "demo" if under else a_file
    refused(["demo", "--out", out, "--epochs", "1"], names=a_file, says="is", inputs=[a_file])


@pytest.mark.parametrize("command", ["report", "bundle"])
def test_directory_outputs_refuse_a_file(small_run, a_file, command):
    extra = ["--target", "int8"] if command == "bundle" else []
    refused(
        [command, small_run, *extra, "--out", a_file, "--overwrite"],
        names=a_file,
        says="is not a directory, but the output is a directory",
        inputs=[a_file],
    )
