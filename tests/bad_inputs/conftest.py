"""The bad-input corpus: valid files made once per session, and ``refused``, the one assertion every case makes.

Each case runs the real command line (``delaynir.cli.main``, in process) on one malformed or hostile
input and must get: exit status 2 (1 where the command's contract says a check failed), one message
naming the file and the problem, no traceback, nothing at the output path, every input unchanged.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
from pathlib import Path

import pytest

from delaynir.cli import main


def fingerprint(path: Path) -> object:
    """Bytes digest of a file, or of every file under a directory (by relative path); None if absent."""
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    if path.is_dir():
        return {str(p.relative_to(path)): fingerprint(p) for p in sorted(path.rglob("*")) if p.is_file()}
    return None


def refused(
    argv: list[str],
    *,
    names: str | Path,
    says: str | list[str],
    inputs: list[Path] = (),
    outputs: list[Path] = (),
    status: int = 2,
) -> str:
    """Run ``delaynir ARGV`` and assert the corpus contract; return what it wrote to stderr."""
    before = {p: fingerprint(p) for p in inputs}
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["-q", *map(str, argv)])
    text = err.getvalue()
    assert code == status, text
    assert "Traceback" not in text
    assert str(Path(names).name) in text, text
    for fragment in [says] if isinstance(says, str) else says:
        assert fragment in text, text
    for path in outputs:
        assert not path.exists(), f"{path} was left behind"
    for path in inputs:
        assert fingerprint(path) == before[path], f"{path} was changed"
    return text


def unsealed(path: Path) -> Path:
    """``path`` without the content digest delaynir writes: a file as another tool writes it, whose damage the
    reader's own checks must find (the digest, which finds any change first, is tests/test_digest.py's)."""
    import h5py

    from delaynir.common.h5 import DIGEST_ATTR

    with h5py.File(path, "r+") as f:
        del f.attrs[DIGEST_ATTR]
    return path


@pytest.fixture(scope="session")
def graph_file(small_run, tmp_path_factory) -> Path:
    """The int8 DelayGraph of the shared small run; treat as read-only."""
    from delaynir.compile.compiler import compile_run

    path = tmp_path_factory.mktemp("corpus_graph") / "model.h5"
    compile_run(small_run, "int8", path)
    return unsealed(path)


@pytest.fixture(scope="session")
def nir_file(graph_file) -> Path:
    """``graph_file`` exported as NIR; treat as read-only."""
    from delaynir.export.nir_io import export_nir
    from delaynir.ir.graph_io import load_graph

    return unsealed(export_nir(load_graph(graph_file), graph_file.with_suffix(".nir")))


@pytest.fixture(scope="session")
def bundle_dir(small_run, tmp_path_factory) -> Path:
    """A hand-off bundle of the shared small run (3 test vectors); treat as read-only."""
    from delaynir.handoff.bundle import write_bundle

    out = tmp_path_factory.mktemp("corpus_bundle") / "bundle"
    write_bundle(small_run, "int8", out, n_samples=3)
    return out
