"""GET /health: whether the service can reach its database."""

from fastapi import APIRouter
from sqlalchemy import select

from wallet_api.deps import Database
from wallet_api.schemas import DATABASE_UNAVAILABLE, HealthStatus

router = APIRouter(tags=["health"])


@router.get("/health", responses=DATABASE_UNAVAILABLE)
def check_health(database: Database) -> HealthStatus:
    """Runs `select 1` on the database."""
    with database.connect() as connection:
        connection.execute(select(1))
    return HealthStatus(status="ok")
