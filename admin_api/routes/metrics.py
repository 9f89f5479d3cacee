"""``GET /metrics``: Prometheus text exposition, read fresh from the database and the broker.

No token is needed unless ``TICKETPOST_METRICS_TOKEN`` is set; then the scraper must send
``Authorization: Bearer <that token>`` (Prometheus: ``authorization: {credentials: ...}``). API
tokens do not open it: a scrape secret should not be an admin key.
"""

from __future__ import annotations

import secrets

from fastapi import APIRouter, HTTPException, Request, Response, status

from admin_api.metrics import CONTENT_TYPE, render_metrics

router = APIRouter(tags=["health"])


def _check_token(request: Request) -> None:
    expected = request.app.state.settings.metrics_token
    if not expected:
        return
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(
        given.strip().encode(), expected.encode()
    ):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="send `Authorization: Bearer <TICKETPOST_METRICS_TOKEN>`",
            headers={"WWW-Authenticate": "Bearer"},
        )


@router.get(
    "/metrics",
    summary="Prometheus metrics (token only when TICKETPOST_METRICS_TOKEN is set)",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {}}, "description": "Prometheus text format 0.0.4"},
        401: {"description": "TICKETPOST_METRICS_TOKEN is set and was not sent"},
    },
)
def metrics(request: Request) -> Response:
    _check_token(request)
    body = render_metrics(engine=request.app.state.engine, settings=request.app.state.settings)
    return Response(content=body, media_type=CONTENT_TYPE)


def check_broker(app) -> None:
    """Readiness check of ``/readyz``: the queue broker answers (Redis PING in distributed mode).

    Raised ``BrokerUnavailable`` when it does not; the in-process queue is always reachable.
    """
    from routing.queues import ping_broker

    ping_broker(settings=app.state.settings)
