"""Step 4, sender: the From address, checked and normalised (models.addresses)."""

from __future__ import annotations

from models.addresses import InvalidAddress, parse_address
from routing.context import RoutingContext
from routing.outcomes import Rejected


def sender(ctx: RoutingContext) -> None:
    """Pick the sender address; raise Rejected(rejected_invalid_sender) when there is none."""
    mail = ctx.mail
    assert mail is not None
    candidates = mail.from_addresses
    problems: list[str] = []
    chosen: tuple[str, str, str] | None = None  # (name, address, domain)
    for name, address in candidates:
        try:
            checked = parse_address(address.strip().strip("<>"))
        except InvalidAddress as exc:
            problems.append(f"{address[:100]!r}: {exc}")
            continue
        chosen = (name, checked.key, checked.domain)
        break
    via = "From"
    if chosen is None and len(candidates) > 1:
        for name, address in mail.sender_header:
            try:
                checked = parse_address(address.strip().strip("<>"))
            except InvalidAddress:
                continue
            chosen, via = (name, checked.key, checked.domain), "Sender"
            break
    if chosen is None:
        if not candidates:
            raw_from = mail.raw_header("From")
            why = "the message has no From header" if raw_from is None else f"From {mail.from_header[:200]!r} holds no address"
        else:
            why = "no usable From address (" + "; ".join(problems)[:500] + ")"
        raise Rejected("rejected_invalid_sender", why)

    name, address, domain = chosen
    ctx.sender_name, ctx.sender_email, ctx.sender_domain = name, address, domain
    if len(candidates) > 1:
        listed = ", ".join(a for _, a in candidates)[:300]
        if via == "Sender":
            ctx.explain("sender", f"From lists {len(candidates)} addresses ({listed}), none usable; using the Sender header {address}")
        else:
            ctx.explain("sender", f"From lists {len(candidates)} addresses ({listed}); using the first valid one, {address}")
    else:
        ctx.explain("sender", f"sender {address}")
