"""Every `WALLET_*` setting, read once from the environment (or a `.env` file)."""

import secrets
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from wallet.errors import ConfigurationError

MIN_JWT_SECRET_BYTES = 32


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WALLET_", env_file=".env", extra="ignore")

    env: Literal["production", "demo"] = "production"
    database_url: str = "sqlite:///var/wallet.db"
    jwt_secret: SecretStr | None = None
    # Where demo secrets and generated reports go.
    var_dir: Path = Path("var")
    # Business calendar of the reports; also how the legacy export wrote its local times.
    timezone: str = "Asia/Shanghai"
    # An order still unpay this long after its create_time is closed by close-unpaid-orders.
    unpaid_timeout: timedelta = Field(default=timedelta(minutes=30), gt=timedelta(0))
    # How often `wallet flows serve` runs each scheduled flow.
    expire_plans_every: timedelta = Field(default=timedelta(minutes=5), gt=timedelta(0))
    close_unpaid_orders_every: timedelta = Field(default=timedelta(minutes=5), gt=timedelta(0))
    settle_refunds_every: timedelta = Field(default=timedelta(minutes=15), gt=timedelta(0))
    # The DuckDB file the reports read (unset: warehouse.duckdb in var_dir, beside the
    # reports), a snapshot of the wallet tables, and how often build-warehouse refreshes it.
    warehouse_path: Path | None = None
    build_warehouse_every: timedelta = Field(default=timedelta(minutes=30), gt=timedelta(0))
    sqlite_busy_timeout_ms: int = Field(default=15_000, ge=0)
    db_pool_size: int = Field(default=5, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)

    @model_validator(mode="after")
    def _warehouse_in_var_dir(self) -> "Settings":
        if self.warehouse_path is None:
            self.warehouse_path = self.var_dir / "warehouse.duckdb"
        return self

    def jwt_signing_key(self) -> str:
        """The HS256 key; only demo mode may invent one (kept in var/ so every command agrees)."""
        if self.jwt_secret is not None:
            key = self.jwt_secret.get_secret_value()
        elif self.env == "demo":
            key = _demo_secret(self.var_dir / "demo-jwt-secret")
        else:
            raise ConfigurationError(
                "WALLET_JWT_SECRET is not set; set it to a random string of at least "
                f"{MIN_JWT_SECRET_BYTES} bytes (only WALLET_ENV=demo may generate one)"
            )
        if len(key.encode()) < MIN_JWT_SECRET_BYTES:
            raise ConfigurationError(
                f"WALLET_JWT_SECRET is {len(key.encode())} bytes; it must be at least "
                f"{MIN_JWT_SECRET_BYTES}"
            )
        return key


def _demo_secret(path: Path) -> str:
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key


@lru_cache
def get_settings() -> Settings:
    """The settings from the environment; a bad value is a ConfigurationError naming it."""
    try:
        return Settings()
    except ValidationError as error:
        problems = "; ".join(
            f"WALLET_{'_'.join(map(str, problem['loc'])).upper()}: {problem['msg']}"
            for problem in error.errors()
        )
        raise ConfigurationError(f"bad setting: {problems}") from None
