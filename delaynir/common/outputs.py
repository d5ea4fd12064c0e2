"""Outputs committed atomically: nothing half-written at a final path, nothing a user wrote replaced silently.

Every writer builds its file (or directory) as a hidden temporary sibling and renames it into place
(``atomic_path``, ``atomic_dir``, ``write_text_atomic``); ``check_output`` refuses an existing output
without ``overwrite`` and a path that cannot be written, naming it.

Temporaries are named ``.<output name>.<pid>.<random>.tmp`` (``.partial`` for a directory, ``.old`` for a replaced
one), so the next writer of the same output removes those a killed process left (``sweep_stale``: its process no
longer exists); a live writer's are never touched. A directory replaces another by one atomic exchange where the
platform has one (Linux ``renameat2(RENAME_EXCHANGE)``), so ``out`` is never missing; elsewhere by two renames.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from delaynir.errors import ConfigError, DelayNIRError

log = logging.getLogger(__name__)
SUFFIXES = (".tmp", ".partial", ".old")  #: a temporary file, a directory being written, a directory replaced


def _prefix(path: Path) -> str:
    """The prefix of this process's temporaries for ``path``: ``.<name>.<pid>.``."""
    return f".{path.name}.{os.getpid()}."


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def sweep_stale(path: Path) -> list[Path]:
    """Remove the temporaries of ``path`` that a process no longer running left beside it (a killed run); return
    them. Temporaries of live processes, and names that are not ours, are left alone."""
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.(\d+)\.[^/]*({'|'.join(map(re.escape, SUFFIXES))})$")
    removed: list[Path] = []
    try:
        siblings = list(path.parent.iterdir())
    except OSError:
        return removed
    for sibling in siblings:
        match = pattern.match(sibling.name)
        if match is None or _alive(int(match.group(1))):
            continue
        if sibling.is_dir() and not sibling.is_symlink():
            shutil.rmtree(sibling, ignore_errors=True)
        else:
            sibling.unlink(missing_ok=True)
        log.warning("removed %s, left by a run that was killed while writing %s", sibling, path)
        removed.append(sibling)
    return removed


#: what a full disk or quota looks like in an error's message where the errno is not attached
NO_SPACE_WORDS = ("No space left on device", "Disk quota exceeded")


def no_space(exc: BaseException) -> bool:
    """Whether ``exc`` says the disk (or the quota) is full."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return isinstance(exc, (OSError, RuntimeError)) and any(w in str(exc) for w in NO_SPACE_WORDS)


def _full(path: Path, previous: bool, error: type[DelayNIRError]) -> DelayNIRError:
    """The one error for a full disk while writing ``path``: where, how much is free, what is left."""
    try:
        free = f"{shutil.disk_usage(path.parent).free} bytes free"
    except OSError:
        free = "free space unknown"
    kept = f"the previous {path.name} is unchanged" if previous else f"nothing was written at {path}"
    return error(f"cannot write {path}: no space left on the device that holds it ({free}); {kept}. Free some space")


RENAME_EXCHANGE = 2  #: linux/fs.h


def _exchange(a: Path, b: Path) -> bool:
    """Swap ``a`` and ``b`` in one atomic step (Linux renameat2 with RENAME_EXCHANGE); False where the platform or
    filesystem has no such call (then nothing was changed)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    AT_FDCWD = -100
    if renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    errno = ctypes.get_errno()
    if errno in (38, 22, 95):  # ENOSYS, EINVAL (filesystem without exchange), EOPNOTSUPP
        return False
    raise OSError(errno, os.strerror(errno), str(b))


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
    sweep_stale(path)
    previous = path.exists()
    try:
        fd, tmp = tempfile.mkstemp(prefix=_prefix(path), suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _full(path, previous, error) if no_space(exc) else exc from None
    os.close(fd)
    try:
        yield Path(tmp)
        Path(tmp).chmod(_mode(0o666))
        if overwrite:
            os.replace(tmp, path)
        else:
            _commit_new(Path(tmp), path, error)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if no_space(exc):
            raise _full(path, previous, error) from None
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
    """Yield a fresh hidden sibling of ``out``; on success rename it to ``out`` (replacing it with ``overwrite``, by
    one atomic exchange where the platform has one).

    On any error the temporary directory is removed and ``out`` is untouched.
    """
    check_output(out, overwrite=overwrite, directory=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(out)
    previous = out.exists()
    try:
        tmp = Path(tempfile.mkdtemp(prefix=_prefix(out), suffix=".partial", dir=out.parent))
    except OSError as exc:
        raise _full(out, previous, ConfigError) if no_space(exc) else exc from None
    try:
        yield tmp
        for file in tmp.iterdir():
            file.chmod(_mode(0o666))
        tmp.chmod(_mode(0o777))
        if out.exists() and _exchange(tmp, out):  # out is the new directory, tmp the old one, in one step
            shutil.rmtree(tmp)
        elif out.exists():
            old = Path(tempfile.mkdtemp(prefix=_prefix(out), suffix=".old", dir=out.parent))
            os.replace(out, old / out.name)
            os.replace(tmp, out)
            shutil.rmtree(old)
        else:
            os.replace(tmp, out)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if no_space(exc):
            raise _full(out, previous, ConfigError) from None
        raise
