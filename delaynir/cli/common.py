"""What every command shares: the shared flags, how a result is printed, and the exit-code policy.

Exit status: 0 success; 1 a verification below its threshold (``delaynir verify``, ``bundle --check``) or a
bundle not written because a simulator does not reproduce it (VerificationError); 2 any other DelayNIRError,
printed as one message without a traceback; 130 interrupted (SIGINT, Ctrl-C); 143 terminated (SIGTERM). Both
signals unwind the command like an error: every temporary of an output being written is removed and nothing
appears at its final path (delaynir.common.outputs).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from delaynir.errors import DelayNIRError, VerificationError


def _jsonable(obj: Any) -> Any:
    """A report's ``to_dict()``; anything else json cannot write (a path) as text."""
    return obj.to_dict() if hasattr(obj, "to_dict") else str(obj)


def print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=_jsonable))


def progress() -> bool:
    """Progress bars only where a person watches (stderr is a terminal)."""
    return sys.stderr.isatty()


def reports() -> bool:
    """False in a torchrun process other than rank 0: rank 0 reports for the run."""
    return int(os.environ.get("RANK", "0")) == 0


def show(args: argparse.Namespace, result: Any, text: str | None = None) -> None:
    """``result`` as JSON with ``--json``, else ``text`` (default: ``str(result)``, a report's own text)."""
    if not reports():
        return
    if args.json:
        print_json(result)
    else:
        print(str(result) if text is None else text)


def passed(ok: bool) -> int:
    """The exit status of a check: 0 when it passed, 1 when it did not."""
    return 0 if ok else 1


def command(
    sub: argparse._SubParsersAction,
    handler: Callable[[argparse.Namespace], int],
    name: str,
    *,
    json: bool = True,
    **kwargs: Any,
) -> argparse.ArgumentParser:
    """The parser of command ``name`` (``sub.add_parser(name, **kwargs)``), run by ``handler``; with ``json``
    it takes ``--json`` (print the result as JSON)."""
    parser = sub.add_parser(name, **kwargs)
    if json:
        parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=handler)
    return parser


def add_overwrite(parser: argparse.ArgumentParser, help: str | None = None) -> None:
    parser.add_argument("--overwrite", action="store_true", help=help)


class Terminated(BaseException):
    """SIGTERM, raised in the main thread (a BaseException, as KeyboardInterrupt is, so that no ``except Exception``
    swallows it and every cleanup on the way out runs)."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated


def run(command: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """``command(args)``'s exit status, or the status of the error it raised (module docstring)."""
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if main_thread else None
    try:
        return command(args)
    except VerificationError as exc:  # a verification failure, as for `verify` and `bundle --check`
        print(f"delaynir: {exc}", file=sys.stderr)
        return 1
    except DelayNIRError as exc:
        print(f"delaynir: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("delaynir: interrupted; nothing half-written was left", file=sys.stderr)
        return 130
    except Terminated:
        print("delaynir: terminated; nothing half-written was left", file=sys.stderr)
        return 143
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
