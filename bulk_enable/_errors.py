"""The one base for every error a user can cause: its words and its exit code travel together.

`main` maps `UserError` (and nothing else) to one line on stderr and an exit code; any other
exception is a bug and crashes loudly with its traceback. Domain modules raise subclasses with
messages in their own terms; the command line adds option names where it knows them.
"""

from __future__ import annotations

from ._model import ExitCode


class UserError(Exception):
    """Bad input or a condition the user must act on: one line (a few for a config), an exit code."""

    exit_code: ExitCode = ExitCode.USAGE  # a subclass's usual code; one instance may say another

    def __init__(self, message: str, *, exit_code: ExitCode | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code

    @property
    def lines(self) -> list[str]:
        """What the user is shown, a line each (never empty)."""
        return str(self).splitlines() or [""]


class UsageError(UserError):
    """A command line, a token or a path the user can fix; nothing was sent."""


class JobStopped(UserError):
    """The job could not start its work (the listing failed, stdout lost); exit 3."""

    exit_code = ExitCode.STOPPED
