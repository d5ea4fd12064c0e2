"""The error hierarchy: one type per failure family, all derived from DelayNIRError.

Messages name the file, node or layer, what was expected and what to do; the CLI
prints the message (no traceback) and exits non-zero.
"""


class DelayNIRError(Exception):
    """Base class of every error delaynir raises on purpose."""


def reason(exc: BaseException) -> str:
    """``Type: first line`` of another library's exception, for a message of ours (some have no text)."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else f"{type(exc).__name__}, no reason given"


class DataFormatError(DelayNIRError):
    """A data file does not follow its layout (SHD, frames: missing keys, bad values) or does not hold what the
    model it is given to takes (inputs, encoding)."""


class ConfigError(DelayNIRError):
    """A configuration value or file is invalid (unknown key, wrong type, out of range)."""


class CheckpointError(DelayNIRError):
    """A run directory or checkpoint is missing, incomplete or incompatible."""


class ShapeError(DelayNIRError):
    """A tensor given to a layer or model has the wrong shape."""


class GraphFormatError(DelayNIRError):
    """A DelayGraph file or object is malformed."""


class TargetError(DelayNIRError):
    """A target profile is invalid or a model does not fit a target."""


class ExportError(DelayNIRError):
    """An exported file is malformed, mismatched or cannot be written."""


class NIRImportError(DelayNIRError):
    """A NIR graph uses nodes or parameters delaynir cannot import."""


class VerificationError(DelayNIRError):
    """An exported file does not reproduce the reference simulator where it must (``delaynir bundle``).

    Unlike the other errors, the command exits with status 1, as ``verify`` and ``bundle --check`` do
    when a check fails.
    """


class ResourceError(DelayNIRError):
    """An input asks for an allocation larger than this machine's memory (checked before allocating)."""
