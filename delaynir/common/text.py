"""Reading a small text input (a settings file, a target profile, a bundle manifest) with errors naming it."""

from __future__ import annotations

import os
from pathlib import Path

from delaynir.errors import DelayNIRError


def read_text(path: str | os.PathLike, error: type[DelayNIRError], what: str) -> str:
    """The UTF-8 text of ``path``; ``error`` saying that the ``what`` at ``path`` is missing or unreadable."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:  # a directory, no permission, binary content
        raise error(f"{what} {path} cannot be read as UTF-8 text ({exc})") from None
