"""A full disk in the middle of every writer: one clear error (exit 2) naming the path and the free space, the
previous output byte-identical, no temporary left.

Each writer first writes its output on a small tmpfs with room to spare, then the disk is filled to a few KiB and
the same command is run again with --overwrite. Mounting needs root (CI runs as root); elsewhere these skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from delaynir.cli import main


@pytest.fixture
def small_disk(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk, leave: int = 8192) -> None:
    """Fill ``disk`` until about ``leave`` bytes are free."""
    free = shutil.disk_usage(disk).free
    with open(disk / "filler", "wb") as f:
        f.write(b"\0" * max(free - leave, 0))


def snapshot(path) -> dict[str, bytes]:
    if path.is_file():
        return {path.name: path.read_bytes()}
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def hidden(disk) -> list[str]:
    return [p.name for p in disk.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("writer", ["compile", "export nir", "export onnx", "export pynn", "bundle", "data synth"])
def test_a_full_disk_leaves_the_previous_output_intact_with_one_clear_error(
    small_run, small_disk, tmp_path, capsys, writer
):
    graph = tmp_path / "g.h5"
    if writer.startswith("export"):
        assert main(["-q", "compile", str(small_run), "--target", "int8", "--out", str(graph)]) == 0
    out, argv = {
        "compile": ("m.h5", ["compile", str(small_run), "--target", "int8", "--out"]),
        "export nir": ("m.nir", ["export", str(graph), "--format", "nir", "-o"]),
        "export onnx": ("m.onnx", ["export", str(graph), "--format", "onnx", "-o"]),
        "export pynn": ("m.pynn.h5", ["export", str(graph), "--format", "pynn", "-o"]),
        "bundle": ("b", ["bundle", str(small_run), "--target", "int8", "--samples", "2", "--out"]),
        "data synth": ("d", ["data", "synth", "--train", "40", "--test", "20", "--out"]),
    }[writer]
    target = small_disk / out
    assert main(["-q", *argv, str(target)]) == 0
    before = snapshot(target)
    fill(small_disk)
    capsys.readouterr()
    assert main(["-q", *argv, str(target), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert "no space left on the device" in err and "Traceback" not in err and err.count("\n") == 1, err
    assert snapshot(target) == before and hidden(small_disk) == []


def test_train_on_a_full_disk_stops_with_one_clear_error_and_no_temporary(tiny_data, small_disk, capsys):
    fill(small_disk, leave=4096)
    argv = ["train", "--data", str(tiny_data), "--out", str(small_disk / "run"), "--hidden", "8", "--epochs", "1"]
    assert main(["-q", *argv, "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "no space left on the device" in err and "Traceback" not in err, err
    assert hidden(small_disk) == [] and not list((small_disk / "run").rglob(".*"))
