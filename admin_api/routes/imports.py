"""HTTP routes of bulk import and export (SPEC §7, §8): templates, imports, exports as CSV.

Templates and exports may be read by any token (technicians read everything); imports change
clients and contacts, so they need an admin token. An import answers its report: 200 when the
file was (or, for a dry run, would be) imported, 422 when any row is bad, and then nothing was
applied and ``errors`` lists every bad row by file line and column.
"""

from __future__ import annotations

import io
import tempfile
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import HTTPException
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel

from admin_api.deps import AdminRole, AnyRole, SessionDep
from admin_api.routes.responses import responses
from admin_api.services.exports import write_export
from admin_api.services.import_templates import template_csv
from admin_api.services.imports import import_file

router = APIRouter(tags=["imports"], responses=responses())

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
SPOOL_IN_MEMORY = 8 << 20
# An import answer lists at most this many bad rows (then one entry counting the rest), so a
# 50 MiB file of bad rows gets an answer of about a megabyte, not a hundred.
MAX_REPORTED_ERRORS = 10_000
READ_CHUNK = 1 << 16


class ImportRowError(BaseModel):
    """One bad row: its line in the file (the header is line 1), the column, and why."""

    row: int
    column: str | None
    message: str


class ImportReportOut(BaseModel):
    """The outcome of an import; with any error nothing was applied."""

    applied: bool
    created: int
    updated: int
    unchanged: int
    errors: list[ImportRowError]


_CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "CSV text"}
}
_IMPORT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
        },
    }
}


def _csv_download(content: str, filename: str) -> Response:
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    return Response(content, media_type=CSV_MEDIA_TYPE, headers=headers)


def _template_route(kind: str) -> None:
    @router.get(f"/imports/templates/{kind}.csv", response_class=Response,
                responses=_CSV_RESPONSE, name=f"template_{kind}",
                summary=f"the empty {kind}.csv import template (its header line)")
    def template(_: AnyRole) -> Response:
        return _csv_download(template_csv(kind), f"{kind}.csv")


def _spooled_export(engine, kind: str):
    """The whole export in a spooled file (memory, then disk), rewound; raises when it failed."""
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115 - closed by the response
    try:
        text = io.TextIOWrapper(spool, encoding="utf-8", newline="", write_through=True)
        write_export(engine=engine, kind=kind, out=text)
        text.detach()
        size = spool.tell()
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    return spool, size


def _export_route(kind: str) -> None:
    @router.get(f"/exports/{kind}.csv", response_class=Response, responses=_CSV_RESPONSE,
                name=f"export_{kind}", summary=f"all {kind} as CSV in import template form")
    async def export(request: Request, _: AnyRole) -> Response:
        # Built completely before answering: a failure is an error answer (503), never a 200
        # with a cut-off file, and the Content-Length lets any client see a truncated transfer.
        spool, size = await run_in_threadpool(_spooled_export, request.app.state.engine, kind)

        def chunks():
            with spool:
                while block := spool.read(READ_CHUNK):
                    yield block

        headers = {"Content-Disposition": f'attachment; filename="{kind}.csv"',
                   "Content-Length": str(size)}
        return StreamingResponse(chunks(), media_type=CSV_MEDIA_TYPE, headers=headers)


async def _uploaded_file(request: Request):
    """The uploaded CSV as a binary file: a multipart ``file`` field, or the raw request body."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form()
        upload = form.get("file")
        if upload is None:
            upload = next((v for v in form.values() if hasattr(v, "read")), None)
        if upload is None or not hasattr(upload, "file"):
            raise HTTPException(422, detail=[{
                "loc": ["body", "file"], "type": "missing",
                "msg": "send the CSV as a multipart field named 'file', or as the request body"}])
        return upload.file
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115 - closed by the caller
    async for chunk in request.stream():
        spool.write(chunk)
    spool.seek(0)
    return spool


def _import_route(kind: Literal["clients", "contacts"]) -> None:
    @router.post(
        f"/imports/{kind}", name=f"import_{kind}", response_model=ImportReportOut,
        openapi_extra=_IMPORT_BODY,
        responses={422: {"description": "bad rows (nothing applied; the report lists them), "
                                        "or a bad query parameter (FastAPI's validation shape)",
                         "content": {"application/json": {"schema": {"anyOf": [
                             {"$ref": "#/components/schemas/ImportReportOut"},
                             {"$ref": "#/components/schemas/HTTPValidationError"}]}}}}},
        summary=f"import {kind}.csv (all or nothing; CSV body or multipart field 'file')",
    )
    async def run_import(
        request: Request,
        session: SessionDep,
        _: AdminRole,
        dry_run: Annotated[bool, Query(description="check and count, change nothing")] = False,
        allow_public_domain: Annotated[bool, Query(
            description="accept public mail providers (gmail.com, ...) as client domains")] = False,
    ) -> JSONResponse:
        source = await _uploaded_file(request)

        def work():
            report = import_file(session=session, kind=kind, source=source, dry_run=dry_run,
                                 allow_public_domains=allow_public_domain)
            if report.applied:
                session.commit()
            return report

        try:
            report = await run_in_threadpool(work)
        finally:
            source.close()
        return JSONResponse(jsonable_encoder(report.as_dict(max_errors=MAX_REPORTED_ERRORS)),
                            status_code=422 if report.errors else 200)


for _kind in ("clients", "contacts"):
    _template_route(_kind)
    _import_route(_kind)
    _export_route(_kind)
