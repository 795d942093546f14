"""UBI events (scope ``events``): ``POST /v1/events``, answered only once the batch is
committed (durable), with what was new and what was a duplicate.

(No ``from __future__ import annotations``: FastAPI reads the real annotations of the
routes, whose body models are this app's.)
"""

import time
from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from shopsearch.errors import EventRecordError
from shopsearch.events.schema import EventRecord, QueryRecord, format_timestamp, parse_record
from shopsearch.serve import schemas
from shopsearch.serve.dependencies import EventsKey, Settings, State
from shopsearch.serve.errors import ApiError
from shopsearch.serve.responses import json_response, problems_message
from shopsearch.serve.settings import ServeSettings

__all__ = ["parse_records", "router"]


def router(models: schemas.RequestModels) -> APIRouter:
    """The route with this server's batch limit (``models``)."""
    routes = APIRouter(tags=["events"])

    @routes.post(
        "/v1/events",
        response_model=schemas.EventsResponse,
        responses=schemas.ERRORS,
        summary="Store user-behaviour records (UBI); durable when answered",
    )
    def post_events(
        body: models.events,  # type: ignore[name-defined]  # (this app's model)
        key: EventsKey,
        state: State,
        settings: Settings,
    ) -> Response:
        result = state.add_records(parse_records(body.records, settings))
        new = result.queries_new + result.events_new
        return json_response({"stored": new, "duplicates": result.duplicates})

    return routes


def parse_records(objects: list[Any], settings: ServeSettings) -> list[QueryRecord | EventRecord]:
    """The batch's records; :class:`ApiError` 400 naming every bad one (nothing is stored)."""
    records = []
    problems = []
    latest = time.time() + settings.max_event_future_s
    for i, obj in enumerate(objects):
        try:
            records.append(parse_record(obj, f"records[{i}]"))
        except EventRecordError as exc:
            problems.append(str(exc))
            continue
        if records[-1].timestamp > latest:
            problems.append(_future_problem(f"records[{i}]", records[-1].timestamp, settings))
    if problems:
        raise ApiError(400, "invalid_record", problems_message(problems, "records"))
    return records


def _future_problem(where: str, timestamp: float, settings: ServeSettings) -> str:
    return (
        f"{where}: timestamp {format_timestamp(timestamp)} is more than "
        f"{settings.max_event_future_s:,.0f} s in the future (the server's clock says "
        f"{format_timestamp(round(time.time()))}; allowed: clock skew of at most that much)"
    )
