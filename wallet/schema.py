"""Applying the schema: Alembic revisions under `wallet/migrations`, views from `sql/`."""

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect

from wallet.errors import ConfigurationError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SQL_DIR = Path(__file__).resolve().parents[1] / "sql"


def alembic_config(engine: Engine | None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    command.upgrade(alembic_config(engine), revision)


def current_revision(engine: Engine) -> str | None:
    if not inspect(engine).has_table("alembic_version"):
        return None
    with engine.connect() as connection:
        return connection.exec_driver_sql("select version_num from alembic_version").scalar()


def head_revision() -> str:
    """The newest revision this code knows."""
    return ScriptDirectory.from_config(alembic_config(None)).get_current_head()


def view_sql(name: str) -> str:
    """The `create view` statement kept in `sql/NAME.sql`."""
    path = SQL_DIR / f"{name}.sql"
    if not path.is_file():
        raise ConfigurationError(
            f"view definition {path} is missing; is the project checkout whole?"
        )
    return path.read_text(encoding="utf-8")
