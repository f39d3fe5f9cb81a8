"""The BigQuery warehouse (google-cloud-bigquery, imported only once a client is needed)."""

from core.warehouse.bigquery.calls import Bounds, Guards
from core.warehouse.bigquery.client import EMULATOR_VARIABLE, emulator_endpoint, make_client
from core.warehouse.bigquery.errors import explain, reason_of
from core.warehouse.bigquery.sql import quote, union_sql
from core.warehouse.bigquery.warehouse import BigQueryWarehouse

__all__ = [
    "EMULATOR_VARIABLE",
    "BigQueryWarehouse",
    "Bounds",
    "Guards",
    "emulator_endpoint",
    "explain",
    "make_client",
    "quote",
    "reason_of",
    "union_sql",
]
