"""The app factory: `create_app()` builds the wallet API on the configured database."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from wallet.db import make_engine
from wallet.errors import AuthenticationError
from wallet.settings import Settings, get_settings
from wallet_api.middleware import DropEmptyQueryValues, allow_empty_query_values
from wallet_api.routers import health, payment_record, service_list

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API; raises ConfigurationError at once when the JWT secret is missing or short."""
    settings = settings or get_settings()
    signing_key = settings.jwt_signing_key()
    engine = make_engine(settings.database_url, settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        log.info("wallet API serving %s", engine.url)
        yield
        engine.dispose()
        log.info("wallet API stopped; database connections closed")

    app = FastAPI(
        title="Wallet API",
        summary="A signed-in user's plan records and orders.",
        version="1.0.0",
        lifespan=lifespan,
    )
    # An empty query value counts as not sent (DropEmptyQueryValues); the document says so too.
    build_openapi = app.openapi
    app.openapi = lambda: app.openapi_schema or allow_empty_query_values(build_openapi())
    app.state.engine = engine
    app.state.jwt_signing_key = signing_key
    app.add_middleware(DropEmptyQueryValues)
    app.add_exception_handler(AuthenticationError, answer_not_signed_in)
    app.add_exception_handler(DBAPIError, answer_database_unavailable)
    app.add_exception_handler(PoolTimeoutError, answer_database_unavailable)
    app.include_router(service_list.router)
    app.include_router(payment_record.router)
    app.include_router(health.router)
    return app


def answer_not_signed_in(_request: Request, error: AuthenticationError) -> JSONResponse:
    return JSONResponse(
        status_code=401, content={"detail": str(error)}, headers={"WWW-Authenticate": "Bearer"}
    )


def answer_database_unavailable(request: Request, error: Exception) -> JSONResponse:
    reason = getattr(error, "orig", None) or error
    log.error("database unavailable for %s %s: %s", request.method, request.url.path, reason)
    return JSONResponse(status_code=503, content={"detail": "database unavailable"})
