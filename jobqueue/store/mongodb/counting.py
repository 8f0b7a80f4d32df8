"""MongoDB's count of the jobs a filter matches, by status: one aggregate that stops after cap+1 matches.

`$match` (served by the filter's index, filters.py), then `$limit` cap+1, then `$group` by status: no more than
cap+1 documents reach the count. A filter no index serves (`url`) may scan many documents to find them, so the
aggregate carries the listings' `maxTimeMS`; one that runs out of time, like one past `cap`, counts as None
(not counted) rather than failing the listing it goes with.
"""

from __future__ import annotations

import pymongo
from pymongo.errors import ExecutionTimeout

from jobqueue.models import STATUSES
from jobqueue.store.base import TaskFilter
from jobqueue.store.mongodb.filters import MAX_TIME_MS, mongo_query
from jobqueue.store.mongodb.parts import MongoParts


class MongoCountOps(MongoParts):
    """count_matching of MongoStore."""

    async def count_matching(self, where: TaskFilter, cap: int) -> dict[str, int] | None:
        """How many jobs a filter matches, by status, counting at most cap+1 of them (None past `cap`, or when
        finding them takes longer than a listing may)."""
        if where.q is not None:
            return None  # no full-text index on this database (Capabilities.list_filters)
        pipeline = [{"$match": mongo_query(where)}, {"$limit": cap + 1},
                    {"$group": {"_id": "$status", "n": {"$sum": 1}}}]
        try:
            with pymongo.timeout(MAX_TIME_MS / 1000):
                groups = await self._call(self.db.jobs.aggregate(pipeline, maxTimeMS=MAX_TIME_MS).to_list(None),
                                          allow=(ExecutionTimeout,))
        except ExecutionTimeout:
            return None
        found = {g["_id"]: int(g["n"]) for g in groups}
        if sum(found.values()) > cap:
            return None
        return {status: found.get(status, 0) for status in STATUSES}
