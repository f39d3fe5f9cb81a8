"""Errors a user can act on. The CLI prints their message and exits 2; nothing else reaches them."""

from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """Bad input: the message names what is wrong and where."""


class ConfigError(UserError):
    """`file:line: key.path: problem`; `file:line:column:` where a character is at fault (bytes
    that are not UTF-8, a control character), as compilers write it and editors jump to it."""

    def __init__(
        self, file: Path, line: int | None, key: str, problem: str, *, column: int | None = None
    ) -> None:
        self.file = file
        self.line = line
        self.column = column
        self.key = key
        self.problem = problem
        where = f"{file}:{line}" if line else str(file)
        if line and column:
            where += f":{column}"
        super().__init__(f"{where}: {key}: {problem}" if key else f"{where}: {problem}")


class WarehouseError(UserError):
    """The warehouse refused or failed; the message says what to do about it.

    `transient`: asking again later may work (unreachable, throttled, a folder away for a
    moment). A permanent error (permission denied, bad SQL, wrong project) will not go away by
    waiting, so a verification gives up on it with its reason instead of retrying forever.
    """

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient
