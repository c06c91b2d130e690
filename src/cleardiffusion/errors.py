"""Errors a user can fix. The command line prints their message on one line and exits with status 2."""


class UsageError(ValueError):
    """Bad input from the user: the message names the problem and the fix."""


class CheckpointError(UsageError):
    """A checkpoint that is missing, truncated, corrupt, or from another model or configuration."""


class NonFiniteLossError(UsageError):
    """The training loss became NaN or infinite (train and toy); the last good checkpoint is kept."""


class DataError(UsageError):
    """A dataset directory or file that is missing, truncated or in the wrong format."""


class WriteError(UsageError, OSError):
    """A file that could not be written (disk full, quota, I/O error); the previous file is kept.

    An OSError too, so code that tolerates a failed optional write (a cache) still catches it.
    """


def first_line(error: BaseException, limit: int = 160) -> str:
    """An exception's message as one clean line for a UsageError: first line, no terminal escape codes."""
    import re

    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip()
    return text.splitlines()[0][:limit] if text else type(error).__name__
