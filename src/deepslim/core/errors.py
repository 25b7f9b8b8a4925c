"""The one error type deepslim raises for problems a user can fix."""

from __future__ import annotations


class DeepslimError(Exception):
    """A problem with the user's input, with a hint on how to fix it.

    The CLI prints these as a single ``error: ...`` line without a traceback.

    Example:
        >>> raise DeepslimError("unknown model 'resnt'", hint="did you mean 'resnet'?")
    """

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    exit_code = 2  # the CLI's exit status for this error

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class Interrupted(DeepslimError):
    """Ctrl-C during work whose finished part was kept; the CLI exits with status 130 like any
    interrupted command, and the hint says how to continue.

    Example:
        >>> raise Interrupted("interrupted during stage 2; finished stages are kept", hint="rerun to resume")
    """

    exit_code = 130
