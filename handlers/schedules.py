"""`/schedules`: recurring fetches (jobs submitted with `every`), listed and stopped."""

from __future__ import annotations

from jobqueue.history.service import HistoryService

from .base import BaseAPIHandler
from .paging import PAGING, continue_listing


class ScheduleListHandler(BaseAPIHandler):
    """GET the schedules, newest first."""

    query_parameters = {"GET": PAGING}

    async def get(self) -> None:
        query = continue_listing(self, "schedules", {})
        page = await HistoryService(self.service).schedules(query.limit, query.store_cursor)
        self.write_json({"schedules": [s.to_json() for s in page.items], "next": query.next(page.next_cursor)})


class ScheduleHandler(BaseAPIHandler):
    """GET one schedule; DELETE stops it (its queued run is cancelled; runs already stored stay)."""

    async def get(self, schedule_id: str) -> None:
        schedule = await HistoryService(self.service).schedule(schedule_id)
        self.write_json({"schedule": schedule.to_json()})

    async def delete(self, schedule_id: str) -> None:
        schedule = await HistoryService(self.service).stop_schedule(schedule_id)
        self.write_json({"schedule": schedule.to_json()})


def schedule_routes(api: str, id_pattern: str) -> list[tuple[str, type[BaseAPIHandler]]]:
    """The routes of this module, for make_app."""
    return [(rf"{api}/schedules/?", ScheduleListHandler), (rf"{api}/schedules/{id_pattern}/?", ScheduleHandler)]
