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

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message
