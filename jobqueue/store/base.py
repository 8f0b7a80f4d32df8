"""The narrow interface every storage backend implements, and its errors.

The interface is written by role in jobqueue/store/roles.py; `Store` is all of them, what a backend is
and what most callers hold. The values that cross it are in jobqueue/store/records.py.
"""

from __future__ import annotations

from typing import Protocol

from jobqueue.errors import BadCursor, Conflict, NotFound, StoreError
from jobqueue.store.records import (
    ALL_TASKS,
    Capabilities,
    ChangePage,
    ChangesUnavailable,
    JobDeleted,
    Lease,
    NewCrawl,
    NewTask,
    RobotsEntry,
    TaskFilter,
)
from jobqueue.store.roles import (
    BatchStore,
    ChangeLog,
    CrawlStore,
    HistoryStore,
    HostStore,
    MaintenanceStore,
    OutboxStore,
    RobotsStore,
    ScheduleStore,
    StatsStore,
    StoreConnection,
    TaskStore,
    ViewStore,
)

__all__ = ["ALL_TASKS", "ROLES", "BadCursor", "BatchStore", "Capabilities", "ChangeLog", "ChangePage",
           "ChangesUnavailable", "Conflict", "CrawlStore", "HistoryStore", "HostStore", "JobDeleted",
           "Lease",
           "MaintenanceStore", "NewCrawl", "NewTask", "NotFound", "OutboxStore", "RobotsEntry", "RobotsStore",
           "ScheduleStore", "StatsStore", "Store", "StoreConnection", "StoreError",
           "TaskFilter", "TaskStore", "ViewStore"]


class Store(StoreConnection, TaskStore, BatchStore, OutboxStore, ScheduleStore, HistoryStore, ChangeLog, StatsStore,
            MaintenanceStore, ViewStore, RobotsStore, CrawlStore, HostStore, Protocol):
    """Durable task storage with leases, shared by the SQLite and MongoDB backends: every role at once."""


# Every role, in the order Store composes them: what the contract suite reads the interface from.
ROLES: tuple[type, ...] = tuple(base for base in Store.__bases__ if base is not Protocol)
