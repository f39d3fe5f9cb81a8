"""The SQL of a refresh: grouped counts of every table in one statement, dates as parameters."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from core.warehouse.base import Scan


def quote(project: str, table: str) -> str:
    """`project.dataset.table`, backquoted (project ids may hold dashes)."""
    return f"`{project}.{table}`"


def union_sql(project: str, scans: Sequence[Scan]) -> str:
    """Grouped row counts of every scan in one statement; `scan` is the scan's position."""
    parts = []
    for i, scan in enumerate(scans):
        column = f"`{scan.date_column}`"
        where = f" AND ({scan.where})" if scan.where else ""
        parts.append(
            f"SELECT {i} AS scan, {column} AS day, COUNT(*) AS n "
            f"FROM {quote(project, scan.table)} "
            f"WHERE {column} BETWEEN @start AND @end{where} GROUP BY {column}"
        )
    return "\nUNION ALL\n".join(parts)


def range_params(start: date, end: date) -> list[Any]:
    from google.cloud import bigquery

    return [
        bigquery.ScalarQueryParameter("start", "DATE", start),
        bigquery.ScalarQueryParameter("end", "DATE", end),
    ]
