"""The delaynir command: JSON output, clear errors with exit status 2, python -m."""

import json
import subprocess
import sys

import pytest

from delaynir.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def data_dir(tmp_path, capsys):
    code, out, _ = run(
        capsys,
        "data",
        "synth",
        "--out",
        str(tmp_path / "d"),
        "--channels",
        "8",
        "--classes",
        "3",
        "--train",
        "40",
        "--test",
        "12",
        "--duration",
        "0.3",
        "--spread",
        "20",
        "--groups",
        "3",
        "--json",
    )
    assert code == 0
    info = json.loads(out)
    assert info["config"]["n_channels"] == 8
    return tmp_path / "d"


def test_synth_check_train_evaluate_with_json(data_dir, tmp_path, capsys):
    code, out, _ = run(capsys, "data", "check", str(data_dir / "train.h5"), "--json")
    assert code == 0 and json.loads(out)["samples"] == 40 and json.loads(out)["channels"] == 8
    cfg = tmp_path / "c.toml"
    cfg.write_text("hidden = [8]\nmax_delay = 5\nbatch_size = 8\nval_fraction = 0.25\n")
    code, out, _ = run(
        capsys,
        "train",
        "--data",
        str(data_dir),
        "--out",
        str(tmp_path / "run"),
        "--config",
        str(cfg),
        "--epochs",
        "2",
        "--json",
    )
    assert code == 0
    summary = json.loads(out)
    assert summary["epochs"] == 2 and summary["delays"] == "learned"
    code, out, _ = run(capsys, "evaluate", str(tmp_path / "run"), "--data", str(data_dir), "--json")
    result = json.loads(out)
    assert code == 0 and result["n"] == 12 and {"accuracy", "accuracy_gaussian"} <= result.keys()
    code, out, _ = run(capsys, "evaluate", str(tmp_path / "run"), "--data", str(data_dir))
    assert code == 0 and "rounded integer delays" in out


def test_synth_refuses_to_overwrite(data_dir, capsys):
    before = (data_dir / "train.h5").read_bytes()
    code, _, err = run(capsys, "data", "synth", "--out", str(data_dir), "--seed", "5")
    assert code == 2 and "delaynir: error:" in err and "--overwrite" in err
    assert (data_dir / "train.h5").read_bytes() == before


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--data", "{d}", "--out", "{t}/r", "--epochs", "0"], "epochs must be >= 1"),
        (["train", "--data", "{t}/nothing", "--out", "{t}/r"], "no spike data"),
        (["evaluate", "{t}/missing-run", "--data", "{d}"], "model.pt does not exist"),
        (["data", "check", "{t}/absent.h5"], "absent.h5"),
    ],
)
def test_errors_are_one_clear_line_and_exit_2(data_dir, tmp_path, capsys, argv, message):
    argv = [a.format(d=data_dir, t=tmp_path) for a in argv]
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_python_dash_m_works():
    out = subprocess.run([sys.executable, "-m", "delaynir", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("delaynir ")
