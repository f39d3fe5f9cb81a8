"""The text of a config file: a regular file of at most MAX_BYTES, UTF-8, no control characters.

`--config` may name anything. A FIFO would block the command until some writer appeared and
/dev/zero would be read until memory ran out, so only a regular file is opened for reading; it is
opened non-blocking (in case the path was swapped for a FIFO after the check) and checked again
through the descriptor. Its size is checked before reading, and at most MAX_BYTES + 1 bytes are
read, so a file that grows meanwhile is refused too. Everything here fails with one ConfigError
naming the file and, where a byte or a character is at fault, its line and column.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path

from core.errors import ConfigError

MAX_BYTES = 5 * 1024 * 1024

#: What YAML refuses to read: C0 controls but tab and line breaks, DEL, C1 controls but NEL,
#: and the non-characters U+FFFE and U+FFFF (the same class as PyYAML's reader).
_NOT_ALLOWED = re.compile("[^\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

_NOT_REGULAR = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def read_config_text(path: Path) -> str:
    return _decoded(path, _read_bytes(path))


def _read_bytes(path: Path) -> bytes:
    try:
        _refuse_unless_small_regular_file(path, os.stat(path))
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as exc:
        raise _unreadable(path, exc) from None
    try:
        _refuse_unless_small_regular_file(path, os.fstat(fd))
        return _read_at_most(path, fd, MAX_BYTES)
    except OSError as exc:
        raise _unreadable(path, exc) from None
    finally:
        os.close(fd)


def _refuse_unless_small_regular_file(path: Path, info: os.stat_result) -> None:
    if not stat.S_ISREG(info.st_mode):
        kind = next((name for test, name in _NOT_REGULAR if test(info.st_mode)), "not a file")
        raise ConfigError(path, None, "", f"is {kind}; --config takes a regular file")
    if info.st_size > MAX_BYTES:
        raise _too_large(path, f"{info.st_size:,} bytes")


def _read_at_most(path: Path, fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while total <= limit:
        chunk = os.read(fd, limit + 1 - total)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
    raise _too_large(path, "more than that (it grew while being read)")


def _too_large(path: Path, size: str) -> ConfigError:
    return ConfigError(
        path, None, "", f"a config file may be at most {MAX_BYTES // 2**20} MiB; this one is {size}"
    )


def _unreadable(path: Path, exc: OSError) -> ConfigError:
    if exc.errno == errno.ENOENT:
        why = "config file not found (pass --config FILE, or run where backfill.yaml is)"
    elif exc.errno in (errno.EACCES, errno.EPERM):
        why = "permission denied: cannot read the config file"
    elif exc.errno == errno.ELOOP:
        why = "too many levels of symbolic links (a symlink loop?)"
    else:
        why = f"cannot read the config file: {exc.strerror or exc}"
    return ConfigError(path, None, "", why)


def _decoded(path: Path, data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, column = _position(data[: exc.start].decode("utf-8"))
        raise ConfigError(
            path,
            line,
            "",
            f"byte 0x{data[exc.start]:02x} is not UTF-8: a config file must be UTF-8 text "
            "(save it as UTF-8)",
            column=column,
        ) from None
    bad = _NOT_ALLOWED.search(text)
    if bad:
        line, column = _position(text[: bad.start()])
        raise ConfigError(
            path,
            line,
            "",
            f"control character {_name(bad.group())} is not allowed in a config file "
            '(inside double quotes write an escape such as "\\t" instead)',
            column=column,
        )
    return text


def _position(before: str) -> tuple[int, int]:
    """Line and column (both from 1) of the character that follows `before`."""
    line_start = before.rfind("\n") + 1
    return before.count("\n") + 1, len(before) - line_start + 1


def _name(char: str) -> str:
    code = ord(char)
    return f"U+{code:04X}" + (" (NUL)" if code == 0 else " (DEL)" if code == 0x7F else "")
