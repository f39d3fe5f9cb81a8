"""Text from jobs and operators, made safe to print to a terminal.

A job's output reaches the operator's terminal through the headless lines (a failure quotes the
job's last error line), `backfill status`, `backfill logs` and the dashboard. A job printing
`ESC ] 2 ; ... BEL` would retitle the terminal, a CSI sequence could move the cursor or clear
the screen, and a lone C1 CSI (0x9b) does the same on terminals that honour 8-bit controls.
`printable` drops colour codes and marks every other escape sequence and control character
(tab excepted) with U+FFFD, so the operator sees that something was there; `strip_controls`
removes control characters outright (names, titles).
"""

from __future__ import annotations

import re

#: The visible mark put where job output had a control sequence (what Textual's Log uses too).
MARK = "\ufffd"

# C0 controls, DEL and the C1 controls.
_CONTROL_CODES = (*range(0x20), *range(0x7F, 0xA0))
_CONTROLS = dict.fromkeys(_CONTROL_CODES)
_CONTROLS_BUT_NEWLINE = {code: None for code in _CONTROL_CODES if code != 0x0A}
#: For job output: every control but tab becomes the mark.
_MARK_CONTROLS = {code: MARK for code in _CONTROL_CODES if code != 0x09}

#: ECMA-48 sequences, 7-bit (ESC ...) or 8-bit (C1): CSI with its parameters; OSC, DCS, SOS, PM
#: and APC up to their terminator (BEL or ST) or the end of the line; other ESC sequences (ESC,
#: intermediates, a final byte). An unterminated CSI is taken as far as it goes.
_SEQUENCE = re.compile(
    r"""
    (?P<csi>(?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*(?P<final>[\x40-\x7e])?)
    | (?:\x1b[\]PX^_]|[\x9d\x90\x98\x9e\x9f]) [^\x07\x1b\x9c]* (?:\x07|\x1b\\|\x9c)?
    | \x1b[\x20-\x2f]*[\x30-\x7e]?
    """,
    re.VERBOSE,
)


def strip_controls(text: str, *, newlines: bool = False) -> str:
    """`text` without control characters (tabs included; newlines too unless `newlines`)."""
    if text.isprintable():
        return text
    return text.translate(_CONTROLS_BUT_NEWLINE if newlines else _CONTROLS)


def _replace(match: re.Match[str]) -> str:
    # Colours and text attributes (SGR, `CSI ... m`) only dress the text: dropped unseen.
    return "" if match["csi"] is not None and match["final"] == "m" else MARK


def printable(line: str) -> str:
    """One line of a job's output, safe to show: colour codes dropped, any other escape
    sequence (OSC titles, cursor moves, ...) and control character (tab excepted) replaced by
    MARK. Markup-looking text is left as is: the Log draws it literally."""
    if line.isprintable():
        return line
    return _SEQUENCE.sub(_replace, line).translate(_MARK_CONTROLS)
