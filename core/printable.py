"""Text from jobs and operators, made safe to print to a terminal.

A job's output reaches the operator's terminal through the headless lines (a failure quotes the
job's last error line), `backfill status` and the dashboard. A job printing `ESC ] 2 ; ... BEL`
would retitle the terminal, a CSI sequence could move the cursor or clear the screen. Escape
sequences are dropped whole, other control characters (C0 but tab, DEL, C1) become spaces.
"""

from __future__ import annotations

import re

# OSC (ESC ] ... BEL or ESC \), CSI (ESC [ params final), and any other two-byte ESC sequence.
_ESCAPE = re.compile(r"\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b\[[0-?]*[ -/]*[@-~]|\x1b.?")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    if not _CONTROL.search(text):  # the common case: nothing to do, no copy
        return text
    return _CONTROL.sub(" ", _ESCAPE.sub("", text))
