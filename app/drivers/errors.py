"""The driver exception tree. Every driver raises only these (or subclasses)."""

from __future__ import annotations


class DriverError(Exception):
    """Base of every driver failure; carries the switch name when known."""

    reason = "driver"

    def __init__(self, message: str, *, switch: str | None = None) -> None:
        super().__init__(message)
        self.switch = switch

    def __str__(self) -> str:
        base = super().__str__()
        return f"{self.switch}: {base}" if self.switch else base


class ConnectionFailed(DriverError):
    """The switch could not be reached (refused, unroutable, SSH negotiation failed)."""

    reason = "connection"


class AuthFailed(ConnectionFailed):
    """The switch refused the credentials."""

    reason = "auth"


class DriverTimeout(DriverError):
    """The switch did not answer within the driver's timeout."""

    reason = "timeout"


class ParseError(DriverError):
    """Output of a command could not be understood; names the command and the line."""

    reason = "parse"

    def __init__(
        self, command: str, message: str, *, line: str | None = None, switch: str | None = None
    ) -> None:
        detail = f"{command}: {message}"
        if line is not None:
            detail += f" (line: {line[:200]!r})"
        super().__init__(detail, switch=switch)
        self.command = command
        self.line = line


class CommitFailed(DriverError):
    """The switch rejected a configuration line or the commit itself."""

    reason = "commit"


class LockFailed(DriverError):
    """The switch (or its configuration session) is locked by someone else."""

    reason = "lock"


class ValidationFailed(DriverError):
    """A value was refused before anything was sent to the switch."""

    reason = "validation"
