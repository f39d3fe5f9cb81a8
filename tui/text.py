"""Text from outside the dashboard (jobs, operators, the warehouse, the config), made safe to draw.

A `str` given to `Static`, `Label`, `notify`, a DataTable cell or a command-palette hit is parsed
as markup, so `[/]` typed in a field raised a MarkupError that ended the app: such text is passed
as `rich.text.Text` (`literal`) or with `markup=False`. Control characters and terminal escapes
are removed by core.printable (neither Rich nor Textual removes ESC).
"""

from __future__ import annotations

from rich.style import StyleType
from rich.text import Text

from core.printable import strip_controls

#: Drawn by a marked row or cell (space marks, for bulk actions), wherever marks are shown.
MARK = "●"


def literal(text: str, style: StyleType = "", *, newlines: bool = True) -> Text:
    """`text` as a Rich Text drawn exactly as written: never parsed as markup, no controls."""
    return Text(strip_controls(text, newlines=newlines), style)
