"""``ticketpost status``: queue depth, dead letters, inbound counts by outcome, mailbox health.

Everything is read now from the database and the broker (the same snapshot ``GET /metrics``
shows). ``--json`` prints one JSON object for scripts. The exit code is 0 when the database and
the broker answered, 1 when one of them did not (the rest is still printed).

In the embedded mode the queue lives inside the running ``ticketpost up`` process, so this
command reads its depth (and the live workers) from that process's ``GET /metrics`` on
API_HOST:API_PORT; when no such process answers it says so, and the database figures (unrouted
messages, the age of the oldest one) still tell whether mail is stuck. With Redis, live workers
come from their heartbeats.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime


def register(sub) -> None:
    parser = sub.add_parser(
        "status", help="queue depth, dead letters, inbound counts by outcome, mailbox health"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def run(args) -> int:
    from models.db import get_engine
    from admin_api.metrics import take_snapshot
    from core.settings import get_settings

    settings = get_settings()
    snap = take_snapshot(engine=get_engine(settings.database_url), settings=settings)
    data = snap.as_dict()
    data["broker"] = "redis" if settings.redis_url else "in-process"
    if settings.redis_url:
        data["workers"] = _redis_workers(settings)
        data["queue_source"] = "redis"
    else:
        _from_running_process(data, settings)
    data["dead_letters"] = sum(q["dead_letter"] for q in data["queues"])
    if args.json:
        json.dump(data, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(format_status(data))
    return 1 if snap.database_error or snap.broker_error else 0


def _redis_workers(settings) -> int | None:
    """Live worker processes by their heartbeats in Redis (None when Redis does not answer)."""
    from core.telemetry import get_event_store

    try:
        for family in get_event_store(settings).collect():
            if family.name == "ticketpost_workers":
                return int(sum(sample.value for sample in family.samples))
    except Exception:  # noqa: BLE001 - reported as broker_error already
        return None
    return None


def _from_running_process(data: dict, settings) -> None:
    """Embedded mode: the queue lives in the running ``ticketpost up``; ask its ``/metrics``.

    Sets ``queues``, ``queue_totals`` and ``workers`` from it, and ``queue_source`` to the URL it
    answered on, or to None when no such process answers (then the queue is not shown).
    """
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    host = "127.0.0.1" if settings.api_host in ("0.0.0.0", "::", "") else settings.api_host
    url = f"http://{host}:{settings.api_port}/metrics"
    request = urllib.request.Request(url)
    if settings.metrics_token:
        request.add_header("Authorization", f"Bearer {settings.metrics_token}")
    data["queue_source"] = None
    data.setdefault("workers", None)
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            text = response.read().decode()
    except Exception:  # noqa: BLE001 - nothing running, or not ours
        return
    queues: dict[str, dict] = {}
    workers = None
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "ticketpost_queue_messages":
                    name = sample.labels["queue"]
                    entry = queues.setdefault(name, {"queue": name})
                    entry[sample.labels["state"]] = int(sample.value)
                elif sample.name == "ticketpost_workers":
                    workers = int(sample.value)
    except Exception:  # noqa: BLE001 - not a ticketpost /metrics
        return
    states = ("ready", "in_flight", "delayed", "dead_letter")
    data["queues"] = [
        {"queue": q["queue"], **{st: q.get(st, 0) for st in states}}
        for q in sorted(queues.values(), key=lambda q: q["queue"])
    ]
    data["queue_totals"] = {st: sum(q[st] for q in data["queues"]) for st in states}
    data["workers"] = workers
    data["queue_source"] = url


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(headers, widths)).rstrip()]
    for row in rows:
        lines.append(
            "  ".join(
                str(v).rjust(w) if isinstance(v, int) else str(v).ljust(w)
                for v, w in zip(row, widths)
            ).rstrip()
        )
    return ["  " + line for line in lines]


def _age(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m {seconds % 60}s"
    if seconds < 172800:
        return f"{seconds // 3600}h {seconds % 3600 // 60}m"
    return f"{seconds // 86400}d {seconds % 86400 // 3600}h"


def _when(iso: str | None) -> str:
    if iso is None:
        return "never"
    return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M:%S UTC")


def _last_error(mailbox: dict) -> str:
    """The error to show: the provider's refusal while auth_failed, else the last error."""
    error = mailbox.get("auth_error") or mailbox.get("last_error") or ""
    return error.splitlines()[0][:80] if error else ""


def format_status(data: dict) -> str:
    """The readable form of a status snapshot (``Snapshot.as_dict`` plus ``broker``)."""
    out = [f"ticketpost status at {_when(data['taken_at'])}", ""]

    db = "ok" if data["database_error"] is None else f"UNREACHABLE ({data['database_error']})"
    if data["broker"] == "redis":
        broker = (
            "redis, ok"
            if data["broker_error"] is None
            else (f"redis, UNREACHABLE ({data['broker_error']})")
        )
    elif data.get("queue_source"):
        broker = f"in-process, read from the running ticketpost up ({data['queue_source']})"
    else:
        broker = "in-process (no running `ticketpost up` answered; its queue lives inside it)"
    out += [f"database: {db}", f"broker:   {broker}"]
    if data.get("workers") is not None:
        out.append(f"workers:  {data['workers']} alive")
    out.append("")

    out.append("Queue")
    if data["queues"]:
        rows = [
            [q["queue"], q["ready"], q["in_flight"], q["delayed"], q["dead_letter"]]
            for q in data["queues"]
        ]
        out += _table(["queue", "ready", "in flight", "delayed", "dead letters"], rows)
    else:
        out.append("  (no queue visible from this process)")
    out.append("")

    if data["database_error"] is None:
        out.append("Inbound messages by outcome")
        counts = data["inbound_by_outcome"]
        if counts:
            rows = [[("not routed yet" if k == "received" else k), n] for k, n in counts.items()]
            rows.append(["total", sum(counts.values())])
            out += _table(["outcome", "messages"], rows)
        else:
            out.append("  (none stored yet)")
        out.append("")
        if data["unrouted"]:
            out.append(
                f"Oldest unrouted message: waiting {_age(data['oldest_unrouted_age_s'])}"
                f" (received {_when(data['oldest_unrouted_at'])}); {data['unrouted']} unrouted"
            )
        else:
            out.append("Oldest unrouted message: none, every stored message is routed")
        out.append("")

        out.append("Outbox (acknowledgements, notices, webhooks)")
        if data.get("outbox"):
            rows = [[o["kind"], o["status"], o["count"]] for o in data["outbox"]]
            out += _table(["kind", "status", "messages"], rows)
            if data.get("oldest_pending_outbox_at"):
                out.append(f"  oldest unsent: waiting {_age(data['oldest_pending_outbox_age_s'])}"
                           f" (written {_when(data['oldest_pending_outbox_at'])}); see GET /api/v1/outbox")
        else:
            out.append("  (nothing sent or queued)")
        out.append("")

        out.append("Mailboxes")
        if data["mailboxes"]:
            rows = [
                [
                    m["name"],
                    m.get("kind", "imap"),
                    "yes" if m["enabled"] else "no",
                    m.get("health", ""),
                    _when(m["last_success_at"]),
                    m["consecutive_failures"],
                    m["backlog"],
                    _last_error(m),
                ]
                for m in data["mailboxes"]
            ]
            out += _table(
                ["mailbox", "kind", "enabled", "health", "last success", "failures", "backlog",
                 "last error"], rows
            )
        else:
            out.append("  (no mailboxes configured)")
    return "\n".join(out) + "\n"
