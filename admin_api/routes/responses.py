"""The error responses routes declare in OpenAPI, so clients (and schemathesis) know them."""

from __future__ import annotations

from typing import Any

from admin_api.schemas import Message

_E = {"model": Message}

AUTH: dict[int | str, dict[str, Any]] = {
    401: {**_E, "description": "no bearer token, or an unknown or revoked one"},
    403: {**_E, "description": "the token's role may not do this"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {**_E, "description": "unknown id"}}
CONFLICT: dict[int | str, dict[str, Any]] = {409: {**_E, "description": "conflicts with existing data; the message says with what"}}


def responses(*extra: dict[int | str, dict[str, Any]]) -> dict[int | str, dict[str, Any]]:
    """AUTH plus the given response groups."""
    out = dict(AUTH)
    for group in extra:
        out.update(group)
    return out
