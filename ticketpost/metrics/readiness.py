"""Readiness of a ticketpost process: can it reach the database and the queue broker right now."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.engine import Engine

from ticketpost.metrics.queues import BrokerUnavailable, ping_broker


@dataclass
class Readiness:
    """The answer of ``GET /readyz``: ``ready`` only when every check passed."""

    checks: dict[str, str] = field(default_factory=dict)  # name -> "ok" or what went wrong

    @property
    def ready(self) -> bool:
        return all(v == "ok" for v in self.checks.values())

    def as_dict(self) -> dict:
        return {"status": "ready" if self.ready else "not ready", "checks": dict(self.checks)}


def check_readiness(*, engine: Engine, settings=None, broker=None) -> Readiness:
    """Run ``SELECT 1`` on the database and PING the broker (Redis in the distributed mode).

    In the embedded mode the queue lives inside this process, so it is reachable by definition.
    Failures are reported by name with a short reason, never raised.
    """
    result = Readiness()
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        result.checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        result.checks["database"] = f"unreachable: {type(exc).__name__}"
    try:
        ping_broker(settings=settings, broker=broker)
        result.checks["broker"] = "ok"
    except BrokerUnavailable as exc:  # name the cause only: /readyz needs no token
        result.checks["broker"] = f"unreachable: {type(exc.__cause__ or exc).__name__}"
    except Exception as exc:  # noqa: BLE001
        result.checks["broker"] = f"unreachable: {type(exc).__name__}"
    return result
