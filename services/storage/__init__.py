"""One storage interface, two backends: a ClickHouse server (clickhouse-driver) and chDB embedded."""

from services.storage.base import Storage, StorageError, open_storage
from services.storage.migrate import migrate

__all__ = ["Storage", "StorageError", "open_storage", "migrate"]
