"""Reading the tail of a log: from its end, whatever its size or encoding."""

from __future__ import annotations

import os
import time

from core import process


def test_tail_reads_from_the_end_of_a_huge_file(tmp_path):
    log = tmp_path / "huge.log"
    with open(log, "wb") as f:
        f.truncate(4 * 1024**3)  # sparse: reading it all would take seconds, seeking takes none
        f.seek(0, os.SEEK_END)
        f.write("\nfirst\n\nsecond\r\ncaf\u00e9 \xff\n".encode() + b"\xff\xfe last\n")
    began = time.monotonic()
    tail = process.read_tail(log)
    assert time.monotonic() - began < 0.5
    assert tail == ("first", "second", "caf\u00e9 \u00ff", "\ufffd\ufffd last")
