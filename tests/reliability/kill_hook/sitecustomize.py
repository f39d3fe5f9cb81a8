"""Loaded by a child Python through PYTHONPATH: kill -9 the process just before its Nth
statement on the journal (a real SIGKILL at a chosen step, with no hook in the engine itself).

KILL_AT_STATEMENT=N picks the statement (0: never); STATEMENT_LOG=FILE appends every journal
statement, one per line, so a test can count the steps of planning first.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
from typing import Any

_target = int(os.environ.get("KILL_AT_STATEMENT", "0"))
_log = os.environ.get("STATEMENT_LOG")
_lock = threading.Lock()
_count = 0
_connect = sqlite3.connect


def _trace(sql: str) -> None:
    global _count
    with _lock:
        _count += 1
        n = _count
        if _log:
            with open(_log, "a") as f:
                f.write(" ".join(sql.split())[:200] + "\n")
    if n == _target:  # SQLite calls this as the statement begins, before it changes anything
        os.kill(os.getpid(), signal.SIGKILL)


def _traced_connect(database: Any, *args: Any, **kwargs: Any) -> sqlite3.Connection:
    conn: sqlite3.Connection = _connect(database, *args, **kwargs)
    if str(database).endswith("journal.sqlite"):
        conn.set_trace_callback(_trace)
    return conn


sqlite3.connect = _traced_connect  # type: ignore[assignment]
