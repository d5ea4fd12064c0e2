"""What delaynir writes is committed with the mode the user's umask gives (temporaries are private); a time
step of zero is refused, not taken for "not given"."""

import os
import stat
import sys

import pytest

from delaynir.cli import main
from delaynir.common import outputs


@pytest.fixture
def umask():
    """Set the process umask for one test; restored afterwards."""
    old = os.umask(0o022)
    os.umask(old)
    yield os.umask
    os.umask(old)


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_compiled_and_exported_files_get_the_mode_of_the_users_umask(small_run, tmp_path, umask, mask):
    umask(mask)
    graph = tmp_path / "g.h5"
    assert main(["-q", "compile", str(small_run), "--target", "int8", "--out", str(graph)]) == 0
    written = [graph]
    for fmt in ("nir", "onnx"):
        written.append(tmp_path / f"g.{fmt}")
        assert main(["-q", "export", str(graph), "--format", fmt, "-o", str(written[-1])]) == 0
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask, path  # mkstemp's 0600 before this was fixed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.h5", "g.nir", "g.onnx"]  # no temporary left


@pytest.mark.parametrize("value", ["0", "-0.01", "nan", "inf"])
def test_data_check_refuses_a_dt_that_is_not_a_positive_number_of_seconds(small_run, capsys, value):
    """``--dt 0`` used to be read as "not given" and the file reported with 0.01 s steps."""
    assert main(["-q", "data", "check", str(small_run.parent / "data" / "test.h5"), "--dt", value]) == 2
    captured = capsys.readouterr()
    assert "dt must be a positive number of seconds" in captured.err and not captured.out, captured


def test_of_two_writers_of_one_new_output_the_second_is_refused_and_the_first_kept(tmp_path):
    """#28: the existence check and the rename were two steps, so two writers both exited 0 and the second
    silently replaced what the first reported as written."""
    from delaynir.common.outputs import atomic_path
    from delaynir.errors import ConfigError

    path = tmp_path / "g.h5"
    refused = pytest.raises(ConfigError, match="created by another process while this one was writing it")
    with refused, atomic_path(path, overwrite=False) as tmp:
        tmp.write_text("second writer")
        path.write_text("first writer")  # the other process commits while this one is still writing
    assert path.read_text() == "first writer" and [p.name for p in tmp_path.iterdir()] == ["g.h5"]
    with atomic_path(path, overwrite=True) as tmp:  # an explicit overwrite still replaces
        tmp.write_text("replaced")
    assert path.read_text() == "replaced" and [p.name for p in tmp_path.iterdir()] == ["g.h5"]


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2 exchange", "two renames"])
def test_a_directory_replaces_another_whole_and_leaves_no_sibling(tmp_path, monkeypatch, exchange):
    """With the atomic exchange (Linux) the old directory is swapped out in one step, so `out` is never missing;
    without it (other platforms, monkeypatched here) two renames, as before. Either way: the new contents, and no
    hidden sibling left."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    swaps = []
    real = outputs._exchange
    monkeypatch.setattr(outputs, "_exchange", lambda a, b: swaps.append(b) or (real(a, b) if exchange else False))
    with outputs.atomic_dir(out, overwrite=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert [p.name for p in out.iterdir()] == ["new.txt"] and swaps == [out]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="renameat2 is Linux's")
def test_the_exchange_swaps_two_directories_in_one_call(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "x").write_text("a")
    (b / "x").write_text("b")
    assert outputs._exchange(a, b)
    assert (a / "x").read_text() == "b" and (b / "x").read_text() == "a"
