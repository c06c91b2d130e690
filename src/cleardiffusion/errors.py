"""Errors a user can fix. The command line prints their message on one line and exits with status 2."""


class UsageError(ValueError):
    """Bad input from the user: the message names the problem and the fix."""


class CheckpointError(UsageError):
    """A checkpoint that is missing, truncated, corrupt, or from another model or configuration."""


class DataError(UsageError):
    """A dataset directory or file that is missing, truncated or in the wrong format."""
