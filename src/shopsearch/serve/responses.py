"""Response helpers shared by the route modules. Routes answer with pre-serialized JSON;
their ``response_model`` only documents the body in the OpenAPI description."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from starlette.responses import Response

__all__ = ["json_response", "problems_message"]

MAX_PROBLEMS = 20  # bad records/products named in one error message


def json_response(data: Any, status: int = 200) -> Response:
    return Response(
        json.dumps(data, separators=(",", ":")).encode("utf-8"),
        status_code=status,
        media_type="application/json",
    )


def problems_message(problems: Sequence[str], what: str) -> str:
    """``3 invalid records, nothing stored: records[0]: ...; ...`` (at most 20 named)."""
    shown = "; ".join(problems[:MAX_PROBLEMS])
    more = f"; and {len(problems) - MAX_PROBLEMS} more" if len(problems) > MAX_PROBLEMS else ""
    return f"{len(problems)} invalid {what}, nothing stored: {shown}{more}"
