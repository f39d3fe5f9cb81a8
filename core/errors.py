"""Errors a user can act on. The CLI prints their message and exits 2; nothing else reaches them."""

from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """Bad input: the message names what is wrong and where."""


class ConfigError(UserError):
    def __init__(self, file: Path, line: int | None, key: str, problem: str) -> None:
        self.file = file
        self.line = line
        self.key = key
        self.problem = problem
        where = f"{file}:{line}" if line else str(file)
        super().__init__(f"{where}: {key}: {problem}" if key else f"{where}: {problem}")
