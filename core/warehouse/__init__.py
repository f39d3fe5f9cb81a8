"""Warehouses: the protocol, the embedded SQLite one, BigQuery, and how a config picks one."""

from __future__ import annotations

from core.config import Config
from core.errors import UserError
from core.warehouse.base import Scan, ScanResult, TableCheck, Warehouse, describe_scan_cost
from core.warehouse.sqlite import SqliteWarehouse

__all__ = ["Scan", "ScanResult", "TableCheck", "Warehouse", "describe_scan_cost", "open_warehouse"]


def open_warehouse(config: Config) -> Warehouse:
    if config.warehouse.kind == "sqlite":
        label = config.warehouse.path or str(config.warehouse_path)
        return SqliteWarehouse(config.warehouse_path, label=label)
    wh = config.warehouse
    if wh.kind == "bigquery" and wh.project:
        # Imported here: the client library loads only for configs that use it.
        from core.warehouse.bigquery import BigQueryWarehouse, Bounds, Guards

        return BigQueryWarehouse(
            wh.project,
            location=wh.location,
            api_endpoint=wh.api_endpoint,
            bounds=Bounds(**wh.timeouts.model_dump(), retry=wh.retry_deadline),
            guards=Guards(
                maximum_bytes_billed=wh.maximum_bytes_billed,
                billing_project=wh.billing_project,
                quota_project=wh.quota_project,
                impersonate=wh.impersonate,
            ),
        )
    raise UserError(f"{config.path}: warehouse: kind {config.warehouse.kind} needs a project")
