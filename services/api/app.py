"""The read API over HTTP (DESIGN.md section 7): thin FastAPI routes that authorize the key,
call :mod:`services.api.service` and shape the response. Mechanisms in docs/read-api.md."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import TypeAdapter
from starlette.exceptions import HTTPException

from services.adapters.postgres import dumps, init_connection, is_transient
from services.api import service
from services.api.auth import ApiKeys
from services.api.metrics import RequestMetrics
from services.config.logs import configure_logging
from services.config.programs import load_programs
from services.config.settings import Settings
from services.contract.api import (
    CouponFilters,
    CouponList,
    CustomerResponse,
    ErrorResponse,
    LedgerEntryView,
    PointsPreviewRequest,
    PointsPreviewResponse,
    StatusChange,
    TransactionDetailResponse,
    TransactionFilters,
    TransactionPage,
)
from services.domain.effects import Rejected
from services.domain.program import Program


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def _error(status: int, code: str, message: str, fields: list[dict[str, str]] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, "fields": fields or []}}, status)


_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "No API key, or an unknown one"},
    403: {"model": ErrorResponse, "description": "The key belongs to another program"},
    404: {"model": ErrorResponse, "description": "No such customer or transaction in this program"},
    422: {"model": ErrorResponse, "description": "Invalid parameters or body; each field is named"},
}
_bearer = HTTPBearer(auto_error=False, description="An API key of the program in the path")
PathId = Annotated[str, Path(min_length=1, max_length=200)]
_history_json = TypeAdapter(list[StatusChange])
_ledger_json = TypeAdapter(list[LedgerEntryView])


def _pool(request: Request) -> asyncpg.Pool:
    pool: asyncpg.Pool = request.app.state.pool
    return pool


async def authorized_program(
    request: Request,
    program: PathId,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Program:
    """The program in the path, if the request's key belongs to it. Any other program,
    configured or not, is 403 alike: a key learns nothing about other programs.

    ``async`` on purpose: FastAPI runs a plain ``def`` dependency in a thread pool, and that
    hop on every request cost a third of the list throughput in ``make bench``."""
    if credentials is None:
        raise ApiError(
            401, "missing_api_key", "send 'Authorization: Bearer <api key>'", {"WWW-Authenticate": "Bearer"}
        )
    owner = request.app.state.keys.program_of(credentials.credentials)
    if owner is None:
        raise ApiError(401, "invalid_api_key", "the API key is not known", {"WWW-Authenticate": "Bearer"})
    if owner != program:
        raise ApiError(403, "program_forbidden", f"the API key does not give access to program {program!r}")
    found: Program = request.app.state.programs[owner]
    return found


Authorized = Annotated[Program, Depends(authorized_program)]


def _register_routes(app: FastAPI) -> None:
    @app.get(
        "/v1/programs/{program}/customers/{customer_id}/transactions",
        response_model=None,
        responses={200: {"model": TransactionPage}, **_ERRORS},
        summary="List a customer's transactions",
    )
    async def list_transactions(
        request: Request,
        program: Authorized,
        customer_id: PathId,
        filters: Annotated[TransactionFilters, Query()],
    ) -> Response:
        page = await service.transaction_page(_pool(request), program, customer_id, filters)
        nxt = _next_page(request, filters) if page.has_more else None
        # Spliced from the stored documents, which are Transaction.document() already.
        body = b"".join(
            (
                b'{"data":[',
                b",".join(page.docs),
                b'],"links":',
                dumps({"self": str(request.url), "next": nxt}).encode(),
                b',"meta":',
                dumps({"limit": filters.limit, "offset": filters.offset, "count": len(page.docs)}).encode(),
                b"}",
            )
        )
        return Response(body, media_type="application/json")

    @app.get(
        "/v1/programs/{program}/transactions/{transaction_id}",
        response_model=None,
        responses={200: {"model": TransactionDetailResponse}, **_ERRORS},
        summary="Retrieve a transaction with its items, status history and points ledger",
    )
    async def get_transaction(request: Request, program: Authorized, transaction_id: PathId) -> Response:
        record = await service.transaction_detail(_pool(request), program, transaction_id)
        # The stored document is spliced as the list does: its money has the transaction
        # currency's digits, which re-encoding the model without that context would lose.
        body = b"".join(
            (
                b'{"data":{"transaction":',
                record.doc,
                b',"status_history":',
                _history_json.dump_json(record.status_history),
                b',"points_ledger":',
                _ledger_json.dump_json(record.points_ledger),
                b"}}",
            )
        )
        return Response(body, media_type="application/json")

    @app.get(
        "/v1/programs/{program}/customers/{customer_id}",
        responses=_ERRORS,
        summary="A customer's balances, purchase attributes and burn rates",
    )
    async def get_customer(request: Request, program: Authorized, customer_id: PathId) -> CustomerResponse:
        return CustomerResponse(data=await service.customer_view(_pool(request), program, customer_id))

    @app.get(
        "/v1/programs/{program}/customers/{customer_id}/coupons",
        responses=_ERRORS,
        summary="A customer's coupons: by default those usable at checkout (claimed, partially redeemed)",
    )
    async def list_coupons(
        request: Request,
        program: Authorized,
        customer_id: PathId,
        filters: Annotated[CouponFilters, Query()],
    ) -> CouponList:
        return CouponList(data=await service.customer_coupons(_pool(request), program, customer_id, filters))

    @app.post(
        "/v1/programs/{program}/points-preview",
        responses=_ERRORS,
        summary="Points a checkout of this cart would earn (base, bonus, per campaign); no side effects",
    )
    async def points_preview(
        request: Request, program: Authorized, cart: PointsPreviewRequest
    ) -> PointsPreviewResponse:
        return PointsPreviewResponse(data=await service.points_preview(_pool(request), program, cart))

    @app.get("/healthz", summary="The process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="The database answers", responses={503: {"model": ErrorResponse}})
    async def readyz(request: Request) -> Response:
        try:
            async with _pool(request).acquire(timeout=2) as conn:
                await conn.fetchval("SELECT 1", timeout=2)
        except Exception as exc:
            if not is_transient(exc):
                raise
            return _error(503, "database_unavailable", repr(exc))
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return PlainTextResponse(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def _next_page(request: Request, filters: TransactionFilters) -> str:
    """The same request at the next offset, in the client's own spelling of the page
    parameters (``limit``/``offset``, or FlipGive's ``page[limit]``/``page[offset]``)."""
    names = ("page[limit]", "page[offset]") if filters.flipgive_pages else ("limit", "offset")
    url = request.url.remove_query_params(["limit", "offset", "page[limit]", "page[offset]"])
    return str(
        url.include_query_params(**{names[0]: filters.limit, names[1]: filters.offset + filters.limit})
    )


def _register_errors(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        response = _error(exc.status, exc.code, exc.message)
        response.headers.update(exc.headers or {})
        return response

    @app.exception_handler(service.NotFound)
    async def not_found(request: Request, exc: service.NotFound) -> JSONResponse:
        return _error(404, exc.code, exc.message)

    @app.exception_handler(Rejected)
    async def rejected(request: Request, exc: Rejected) -> JSONResponse:
        # The cart would be rejected by checkout ingestion, with this same code.
        return _error(422, exc.code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [
            {
                "location": str(err["loc"][0]) if err["loc"] else "request",
                "field": ".".join(str(part) for part in err["loc"][1:]),
                "message": err["msg"],
            }
            for err in exc.errors()
        ]
        named = ", ".join(sorted({f["field"] or f["location"] for f in fields}))
        return _error(422, "invalid_request", f"invalid {named}", fields)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed"}
        return _error(exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        if is_transient(exc):
            response = _error(503, "database_unavailable", "the database is unavailable; retry later")
            response.headers["Retry-After"] = "1"
            return response
        return _error(500, "internal_error", "unexpected error; see the service logs")


def create_app(settings: Settings, programs: dict[str, Program]) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # min_size=0: the API starts, and says it is not ready, while the database is down.
        app.state.pool = await asyncpg.create_pool(
            settings.database_url,
            min_size=0,
            max_size=settings.api_pool_size,
            init=init_connection,
        )
        yield
        await app.state.pool.close()

    app = FastAPI(
        title="Loyalty engine read API",
        version=version("loyalty-engine"),
        description="Read-only access to transactions, customers, burn rates and points previews, "
        "per program. Authenticate with 'Authorization: Bearer <api key>'.",
        lifespan=lifespan,
    )
    app.state.programs = programs
    app.state.keys = ApiKeys(programs)
    app.add_middleware(RequestMetrics)
    _register_routes(app)
    _register_errors(app)
    return app


def app_from_env() -> FastAPI:
    """The uvicorn factory (``python -m services.api``): settings and programs from the environment."""
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format, "api")  # also in each worker process
    return create_app(settings, load_programs(settings.programs_file))
