"""SIGKILL at every write point: a child process runs the real command and kills itself just before or just
after a chosen file is committed (os.replace onto its final name), deterministically. Afterwards nothing
complete-looking is partial, and `train --resume` gives the run an uninterrupted one gives.

Children are forked from a fork server that has imported delaynir but never run it: forking a process that
has used OpenMP (torch, numba) is unsafe, and a fresh interpreter per child would import torch each time."""

from __future__ import annotations

import multiprocessing
import os
import signal

import pytest
import torch

from delaynir.cli import main
from delaynir.train import checkpoints

FORK_SERVER = multiprocessing.get_context("forkserver")
FORK_SERVER.set_forkserver_preload(
    [
        "torch",
        "delaynir.cli",
        "delaynir.train.loop",
        "delaynir.compile.compiler",
        "delaynir.handoff.bundle",
        "delaynir.handoff.report",
        "delaynir.export.nir_io",
        "delaynir.converters.onnx_export",
        "delaynir.converters.onnxruntime",
    ]
)
TRAIN = ["--hidden", "8", "--max-delay", "4", "--epochs", "3", "--batch-size", "16", "--device", "cpu", "--seed", "2"]


def _run_and_die(
    argv: list[str], name: str | None = None, nth: int = 0, when: str = "", sig: int = signal.SIGKILL
) -> None:
    """``delaynir ARGV`` in this (forked) process, sent ``sig`` (SIGKILL: killed) at the ``nth`` commit of ``name``
    (None: never).

    A commit is the rename that puts an output in place (os.replace) or, for a new output that must not replace
    one written meanwhile, the hard link that does (os.link, delaynir.common.outputs)."""
    torch.set_num_threads(1)
    seen = {"n": 0}

    def commit_point(real):
        def commit(src, dst, *args, **kwargs):
            hit = os.path.basename(os.fspath(dst)) == name
            seen["n"] += hit
            if hit and seen["n"] == nth and when == "before":
                os.kill(os.getpid(), sig)
            real(src, dst, *args, **kwargs)
            if hit and seen["n"] == nth and when == "after":
                os.kill(os.getpid(), sig)

        return commit

    os.replace, os.link = commit_point(os.replace), commit_point(os.link)
    os._exit(main(["-q", *map(str, argv)]))


def killed(argv: list[str], name: str, nth: int = 1, when: str = "before") -> None:
    """Run ``delaynir ARGV`` in a forked process killed at the ``nth`` commit of a file called ``name``."""
    process = FORK_SERVER.Process(target=_run_and_die, args=(argv, name, nth, when))
    process.start()
    process.join(300)
    assert process.exitcode == -signal.SIGKILL, f"never reached the {when} point of {name} #{nth}"


def signalled(argv: list[str], name: str, sig: int, nth: int = 1) -> int:
    """Exit status of ``delaynir ARGV`` in a forked process sent ``sig`` just before the ``nth`` commit of ``name``."""
    process = FORK_SERVER.Process(target=_run_and_die, args=(argv, name, nth, "before", sig))
    process.start()
    process.join(300)
    return process.exitcode


def in_child(argv: list[str]) -> int:
    """Exit status of ``delaynir ARGV`` run to its end in a forked process, as the killed runs are: runs
    compared bit for bit must share threads and process set-up, which order float reductions."""
    process = FORK_SERVER.Process(target=_run_and_die, args=(argv,))
    process.start()
    process.join(300)
    return process.exitcode


@pytest.fixture(scope="module")
def uninterrupted(tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("full") / "run"
    assert in_child(["train", "--data", tiny_data, "--out", out, *TRAIN]) == 0
    return out


def _same_run(a, b):
    """Metrics bit for bit; weights to float rounding. A resumed process repeats every operation, but
    CPU kernels may sum in an order that depends on memory alignment, which differs in a fresh process:
    seen, ~1e-7 in the first layer's weights after two epochs. A lost optimiser state, RNG stream or
    epoch would differ by orders of magnitude more."""
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(checkpoints.read_metrics(a)) == strip(checkpoints.read_metrics(b))
    for name in (checkpoints.CHECKPOINT, checkpoints.MODEL):
        x, y = checkpoints.load_pt(a / name), checkpoints.load_pt(b / name)
        assert x["epoch"] == y["epoch"] and x["model"].keys() == y["model"].keys()
        for k in x["model"]:
            torch.testing.assert_close(y["model"][k], x["model"][k], rtol=1e-4, atol=1e-5, msg=f"{name}: {k}")


# (file, its nth commit, killed before or after it): config.toml, then per epoch model.pt (if it improved),
# metrics.jsonl (the first commit is the empty file at the start), checkpoint.pt
TRAIN_POINTS = [
    (checkpoints.MODEL, 1, "after"),
    (checkpoints.METRICS, 2, "after"),
    (checkpoints.CHECKPOINT, 1, "after"),
    (checkpoints.CHECKPOINT, 2, "before"),
]


@pytest.mark.parametrize("name, nth, when", TRAIN_POINTS, ids=[f"{w} {n} #{k}" for n, k, w in TRAIN_POINTS])
def test_train_killed_then_resumed_equals_an_uninterrupted_run(tiny_data, uninterrupted, tmp_path, name, nth, when):
    out = tmp_path / "run"
    argv = ["train", "--data", tiny_data, "--out", out, *TRAIN]
    killed(argv, name, nth, when)
    committed = (
        checkpoints.load_pt(out / checkpoints.CHECKPOINT)["epoch"] if (out / checkpoints.CHECKPOINT).exists() else 0
    )
    assert [m["epoch"] for m in checkpoints.read_metrics(out)] in (
        [*range(1, committed + 1)],
        [*range(1, committed + 2)],
    )  # one ahead, not committed
    assert in_child(["train", "--data", tiny_data, "--out", out, "--resume"]) == 0
    _same_run(uninterrupted, out)


def test_compile_and_export_killed_leave_nothing_at_the_final_path(small_run, tmp_path):
    killed(["compile", small_run, "--target", "int8", "--out", tmp_path / "m.h5"], "m.h5")
    assert not (tmp_path / "m.h5").exists()
    assert main(["-q", "compile", str(small_run), "--target", "int8", "--out", str(tmp_path / "m.h5")]) == 0
    for fmt in ("nir", "onnx"):
        out = tmp_path / f"m.{fmt}"
        killed(["export", tmp_path / "m.h5", "--format", fmt, "-o", out], out.name)
        assert not out.exists()


@pytest.mark.parametrize("command", ["bundle", "report"])
def test_directory_outputs_killed_before_the_rename_leave_nothing(small_run, tmp_path, command):
    out = tmp_path / command
    extra = ["--target", "int8", "--samples", "2"] if command == "bundle" else ["--target", "int8"]
    killed([command, small_run, *extra, "--out", out], out.name)
    assert not out.exists()


def test_data_synth_killed_between_its_files_leaves_no_training_file(tmp_path):
    out = tmp_path / "data"
    killed(["data", "synth", "--out", out, "--train", "6", "--test", "3"], "test.h5", when="after")
    assert (out / "test.h5").exists() and not (out / "train.h5").exists()
    assert main(["-q", "train", "--data", str(out), "--out", str(tmp_path / "run")]) == 2
    assert not (tmp_path / "run").exists()


def _temporaries(folder) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*"))


SIGNALS = [(signal.SIGINT, 130), (signal.SIGTERM, 143)]


@pytest.mark.parametrize("sig, status", SIGNALS, ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_train_unwinds_it_and_resume_continues_identically(
    tiny_data, uninterrupted, tmp_path, sig, status
):
    out = tmp_path / "run"
    argv = ["train", "--data", tiny_data, "--out", out, *TRAIN]
    assert signalled(argv, checkpoints.CHECKPOINT, sig, nth=2) == status
    assert _temporaries(out) == [] and checkpoints.load_pt(out / checkpoints.CHECKPOINT)["epoch"] == 1
    assert in_child(["train", "--data", tiny_data, "--out", out, "--resume"]) == 0
    _same_run(uninterrupted, out)


@pytest.mark.parametrize("sig, status", SIGNALS, ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("command", ["compile", "bundle", "data synth"])
def test_a_signal_before_an_output_is_committed_leaves_nothing_and_no_temporary(
    small_run, tmp_path, command, sig, status
):
    argv, name = {
        "compile": (["compile", small_run, "--target", "int8", "--out", tmp_path / "m.h5"], "m.h5"),
        "bundle": (["bundle", small_run, "--target", "int8", "--samples", "2", "--out", tmp_path / "b"], "b"),
        "data synth": (["data", "synth", "--out", tmp_path / "d", "--train", "6", "--test", "3"], "test.h5"),
    }[command]
    assert signalled(argv, name, sig) == status
    assert not (tmp_path / name).exists() and _temporaries(tmp_path) == []


def test_temporaries_a_killed_run_left_are_removed_by_the_next_writer_of_that_output(small_run, tmp_path):
    argv = ["compile", small_run, "--target", "int8", "--out", tmp_path / "m.h5"]
    killed(argv, "m.h5")  # SIGKILL: no cleanup can run
    (left,) = _temporaries(tmp_path)
    assert left.startswith(".m.h5.") and left.endswith(".tmp")
    live = tmp_path / f".m.h5.{os.getpid()}.writing.tmp"  # a live process's temporary: never touched
    live.write_text("")
    assert main(["-q", "compile", str(small_run), "--target", "int8", "--out", str(tmp_path / "m.h5")]) == 0
    assert _temporaries(tmp_path) == [live.name] and (tmp_path / "m.h5").is_file()


@pytest.mark.parametrize("sig, status", SIGNALS, ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_verify_stops_it_with_its_status(small_run, tmp_path, sig, status):
    """verify writes nothing of the user's: signalled while it exports the NIR file it runs (in its own temporary
    directory), it stops with the conventional status."""
    graph = tmp_path / "g.h5"
    assert main(["-q", "compile", str(small_run), "--target", "int8", "--out", str(graph)]) == 0
    argv = [
        "verify",
        graph,
        "--data",
        small_run.parent / "data" / "test.h5",
        "--sims",
        "reference,norse",
        "--samples",
        "4",
    ]
    assert signalled(argv, "model.nir", sig) == status
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.h5"]
