"""Warehouses: the protocol, the embedded SQLite one, and how a config picks one."""

from __future__ import annotations

from core.config import Config
from core.errors import UserError
from core.warehouse.base import Scan, ScanResult, Warehouse
from core.warehouse.sqlite import SqliteWarehouse

__all__ = ["Scan", "ScanResult", "Warehouse", "open_warehouse"]


def open_warehouse(config: Config) -> Warehouse:
    if config.warehouse.kind == "sqlite":
        label = config.warehouse.path or str(config.warehouse_path)
        return SqliteWarehouse(config.warehouse_path, label=label)
    raise UserError(f"{config.path}: warehouse.kind: bigquery is not supported by this build yet")
