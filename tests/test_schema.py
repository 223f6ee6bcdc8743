"""The Alembic revisions build exactly the tables the code declares, on both databases."""

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from wallet.schema import alembic_config, current_revision, upgrade
from wallet.tables import metadata


def test_migrations_build_the_declared_tables(engine):
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)

    assert differences == []
    assert {"service_list", "payment_record_list"} <= set(inspect(engine).get_view_names())


def test_upgrade_again_changes_nothing(engine):
    before = current_revision(engine)

    upgrade(engine)

    assert current_revision(engine) == before is not None


def test_downgrade_to_base_removes_every_table_and_view(engine):
    command.downgrade(alembic_config(engine), "base")

    inspector = inspect(engine)
    assert set(inspector.get_table_names()) == {"alembic_version"}
    assert inspector.get_view_names() == []
