"""When the dashboard itself fails: the error goes to a report file and to one line, never a
screen of traceback. The engine is another process, so the run and its attempts go on; the
line says so and how to look again."""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
import traceback
from importlib.metadata import version
from pathlib import Path

from core.printable import strip_controls

REPORTS = "crash-reports"


def write_report(state_dir: Path, error: BaseException) -> Path:
    """The traceback and what it ran on, in `state_dir/crash-reports/` (private: a traceback
    quotes paths and values), or in the temp dir when the state dir cannot be written."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    when = time.strftime("%Y-%m-%d %H:%M:%S %z")
    text = "".join(
        [
            f"backfill {version('backfill')} dashboard crash, {when}\n",
            f"python {platform.python_version()} on {platform.platform()}; "
            f"textual {version('textual')}; argv {sys.argv!r}\n\n",
            *traceback.format_exception(error),
        ]
    )
    for folder in (state_dir / REPORTS, Path(tempfile.gettempdir())):
        path = folder / f"dashboard-{stamp}-{os.getpid()}.txt"
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        except OSError:
            continue
        with os.fdopen(fd, "w") as f:
            f.write(text)
        return path
    raise OSError(f"no folder to write a crash report in ({state_dir / REPORTS} nor temp)")


def crash_line(error: BaseException, report: Path | None) -> str:
    what = strip_controls(f"{type(error).__name__}: {error}")
    where = f"the report is in {report}" if report else "no report could be written"
    return (
        f"backfill: the dashboard failed ({what}); {where}. A run it was watching goes on: "
        "`backfill status` shows it, `backfill` attaches again."
    )
