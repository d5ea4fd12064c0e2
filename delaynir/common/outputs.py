"""Outputs committed atomically: nothing half-written at a final path, nothing a user wrote replaced silently.

Every writer builds its file (or directory) as a hidden temporary sibling and renames it into place
(``atomic_path``, ``atomic_dir``, ``write_text_atomic``); ``check_output`` refuses an existing output
without ``overwrite`` and a path that cannot be written, naming it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from delaynir.errors import ConfigError, DelayNIRError


def check_output(
    path: str | os.PathLike, *, overwrite: bool, directory: bool = False, error: type[DelayNIRError] = ConfigError
) -> Path:
    """``path`` if an output can be committed there; else ``error`` saying why and what to do.

    Refused: an existing path without ``overwrite``, a directory where a file is written (or a file
    where a directory is, with ``directory``), and a path under an existing regular file.
    """
    path = Path(path)
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise error(f"cannot write {path}: {parent} is a file, not a directory; choose another output path")
            break
    if path.exists() or path.is_symlink():
        if path.is_dir() != directory:
            what, wanted = ("a directory", "a file") if path.is_dir() else ("not a directory", "a directory")
            raise error(f"{path} exists and is {what}, but the output is {wanted}; choose another output path")
        if not overwrite:
            raise error(f"{path} already exists; pass --overwrite (overwrite=True in Python) to replace it")
    return path


def _mode(full: int) -> int:
    """``full`` (0o666 for a file, 0o777 for a directory) less the user's umask: the mode a plain ``open`` or
    ``mkdir`` gives. Temporaries are created private (mkstemp, mkdtemp); a committed output is meant to be read
    by the colleague it is handed to."""
    umask = os.umask(0)
    os.umask(umask)
    return full & ~umask


@contextmanager
def atomic_path(
    path: str | os.PathLike, *, overwrite: bool = True, error: type[DelayNIRError] = ConfigError
) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically.

    ``path`` is checked first (``check_output``). On any error the temporary file is removed and
    ``path`` is left untouched. This is the one place where a file output is committed.
    """
    path = check_output(path, overwrite=overwrite, error=error)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        Path(tmp).chmod(_mode(0o666))
        if overwrite:
            os.replace(tmp, path)
        else:
            _commit_new(Path(tmp), path, error)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _commit_new(tmp: Path, path: Path, error: type[DelayNIRError]) -> None:
    """Rename ``tmp`` to ``path`` only if ``path`` still does not exist, in one step: a hard link fails where
    the name is taken, so of two processes writing one new output one wins and the other is refused, instead
    of both succeeding and the second silently replacing the first. Where the filesystem has no hard links,
    the check and the rename are two steps, as before."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise error(
            f"{path} was created by another process while this one was writing it; it is left as that process "
            "wrote it (pass --overwrite to replace it)"
        ) from None
    except OSError:  # no hard links here (FAT, some network filesystems)
        if path.exists():
            raise error(f"{path} was created by another process while this one was writing it") from None
        os.replace(tmp, path)
        return
    tmp.unlink()


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


@contextmanager
def atomic_dir(out: Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a fresh hidden sibling of ``out``; on success rename it to ``out`` (replacing it with ``overwrite``).

    On any error the temporary directory is removed and ``out`` is untouched.
    """
    check_output(out, overwrite=overwrite, directory=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        yield tmp
        for file in tmp.iterdir():
            file.chmod(_mode(0o666))
        tmp.chmod(_mode(0o777))
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
            os.replace(out, old / out.name)
            os.replace(tmp, out)
            shutil.rmtree(old)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
