"""`wallet`: set up the database, import exports, migrate VIP rows, serve the API.

Exit codes: 0 done; 1 done, but some input lines were rejected; 2 an input file cannot be read
or its header is wrong (nothing written), or the command line is wrong; 3 a setting is missing
or unusable, or the database schema is not applied; 4 the database cannot be reached.
"""

import json
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager, suppress
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.exc import OperationalError

from wallet.db import get_engine
from wallet.errors import ConfigurationError, InputFileError
from wallet.schema import current_revision, head_revision, upgrade
from wallet.settings import get_settings
from wallet_cli.report import report_command

EXIT_REJECTED_LINES = 1
EXIT_BAD_INPUT = 2
EXIT_CONFIGURATION = 3
EXIT_DATABASE = 4

app = typer.Typer(help=__doc__, no_args_is_help=True, pretty_exceptions_enable=False)
db_app = typer.Typer(help="The database schema.", no_args_is_help=True)
import_app = typer.Typer(help="Load exports into the database.", no_args_is_help=True)
flows_app = typer.Typer(
    help="The Prefect flows: run one now, or serve them all.", no_args_is_help=True
)
app.add_typer(db_app, name="db")
app.add_typer(import_app, name="import")
app.add_typer(flows_app, name="flows")

Encoding = Annotated[
    str, typer.Option(help="Text encoding of the file, e.g. gb18030 for an Excel export.")
]


def fail(message: str, code: int) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code)


def ready_engine():
    """The configured engine, once its schema is known to be applied."""
    engine = get_engine()
    try:
        revision = current_revision(engine)
    except OperationalError as error:
        raise fail(f"cannot reach the database: {error.orig}", EXIT_DATABASE) from error
    if revision is None:
        message = "the database has no schema yet; run `wallet db upgrade` first"
        raise fail(message, EXIT_CONFIGURATION)
    if revision != head_revision():
        message = (
            f"the database schema is at revision {revision}, this version needs "
            f"{head_revision()}; run `wallet db upgrade` first"
        )
        raise fail(message, EXIT_CONFIGURATION)
    return engine


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or update the tables and views (safe to run again)."""
    engine = get_engine()
    try:
        upgrade(engine)
    except OperationalError as error:
        raise fail(f"cannot reach the database: {error.orig}", EXIT_DATABASE) from error
    typer.echo(f"database at revision {current_revision(engine)}: {engine.url!r}")


def _print_import(reports) -> int:
    for report in reports:
        typer.echo(report.summary())
    return max((report.exit_code for report in reports), default=0)


@import_app.command("legacy")
def import_legacy_command(
    directory: Annotated[Path, typer.Argument(help="Folder with vip_role.csv and user_vip.csv.")],
    encoding: Encoding = "utf-8",
) -> None:
    """Load the old plan catalogue and VIP memberships, keyed by legacy id."""
    from pipelines.importers import import_legacy

    try:
        reports = import_legacy(ready_engine(), directory, encoding=encoding)
    except InputFileError as error:
        raise fail(str(error), EXIT_BAD_INPUT) from error
    raise typer.Exit(_print_import(reports))


@import_app.command("orders")
def import_orders_command(
    path: Annotated[Path, typer.Argument(help="payment_record.csv as the back office exports it.")],
    encoding: Encoding = "utf-8",
) -> None:
    """Load payment records; bad lines are listed with their line number and reason."""
    from pipelines.importers import import_orders

    try:
        report = import_orders(ready_engine(), path, encoding=encoding)
    except InputFileError as error:
        raise fail(str(error), EXIT_BAD_INPUT) from error
    raise typer.Exit(_print_import([report]))


@import_app.command("refunds")
def import_refunds_command(
    path: Annotated[Path, typer.Argument(help="The payment gateway's refund settlement file.")],
    encoding: Encoding = "utf-8",
) -> None:
    """Load refund settlements; the settle-refunds flow applies them."""
    from pipelines.importers import import_refunds

    try:
        report = import_refunds(ready_engine(), path, encoding=encoding)
    except InputFileError as error:
        raise fail(str(error), EXIT_BAD_INPUT) from error
    raise typer.Exit(_print_import([report]))


@contextmanager
def stop_at_once_when_interrupted():
    """Ctrl-C or SIGTERM during a flow: say what is kept and exit now, without waiting.

    Every batch is its own transaction, so what was committed stays and what was not rolls
    back when the connection drops; the next run picks up the rest.
    """

    def stop(signum, _frame) -> None:
        sys.stderr.write(
            f"\ninterrupted ({signal.Signals(signum).name}): every finished batch is kept; "
            "run the same command again to finish\n"
        )
        # The server may have been stopped by the same Ctrl-C: give it a moment, not more.
        telling = threading.Thread(target=_mark_flow_run_crashed, daemon=True)
        telling.start()
        telling.join(timeout=3)
        _stop_temporary_prefect_server()
        os._exit(128 + signum)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _mark_flow_run_crashed() -> None:
    """Tell the Prefect server the run stopped, so the UI does not show it running forever."""
    from prefect.client.orchestration import get_client
    from prefect.context import FlowRunContext
    from prefect.states import Crashed

    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return
    try:
        with get_client(sync_client=True) as client:
            client.set_flow_run_state(
                context.flow_run.id, Crashed(message="interrupted at the console"), force=True
            )
    except Exception:
        pass


def _stop_temporary_prefect_server() -> None:
    """Stop the server Prefect started for this command when PREFECT_API_URL is not set."""
    # NOTE: Prefect keeps its temporary servers in this private registry; no public call stops
    # them, and exiting without stopping one leaves it running.
    from prefect.server.api.server import SubprocessASGIServer

    for server in list(getattr(SubprocessASGIServer, "_instances", {}).values()):
        with suppress(Exception):  # best effort on the way out
            server.stop()


def _terminal_progress():
    """A one-line progress display on a terminal, or None when output is not a terminal."""
    if not sys.stderr.isatty():
        return None
    started = time.monotonic()

    def show(done: int, total: int) -> None:
        rate = done / max(time.monotonic() - started, 1e-6)
        share = 100 * done / max(total, 1)
        sys.stderr.write(f"\r  {done:,} of {total:,} rows ({share:.0f}%), {rate:,.0f} rows/s ")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show


def print_migration_report(summary: dict) -> None:
    title = "VIP migration (dry run, nothing written)" if summary["dry_run"] else "VIP migration"
    typer.echo(title)
    typer.echo(f"  legacy rows read          {summary['rows_read']:>9,}")
    if summary["dry_run"]:
        typer.echo(f"  would be migrated         {summary['migrated']:>9,}")
    else:
        typer.echo(f"  migrated by this run      {summary['migrated']:>9,}")
    typer.echo(f"  already migrated          {summary['already_migrated']:>9,}")
    total_label = "plan records, after a run" if summary["dry_run"] else "plan records migrated"
    typer.echo(f"  {total_label:<26}{summary['migrated_total']:>9,}")
    if summary["retry_quarantined"]:
        typer.echo(f"  released from quarantine  {summary['released_from_quarantine']:>9,}")
    typer.echo(
        f"  quarantined, new / total  {summary['quarantined_new']:>9,} / "
        f"{summary['quarantined_total']:,}"
    )
    for reason, counts in summary["quarantined_by_reason"].items():
        typer.echo(f"    {reason:<23} {counts['new']:>9,} / {counts['total']:,}")


@app.command("migrate-vip")
def migrate_vip_command(
    dry_run: Annotated[bool, typer.Option(help="Compute the report; write nothing.")] = False,
    batch_size: Annotated[int, typer.Option(min=1, max=100_000, help="Rows per batch.")] = 5_000,
    retry_quarantined: Annotated[
        bool, typer.Option(help="Look again at quarantined rows; migrate those that now pass.")
    ] = False,
    rollback: Annotated[
        bool, typer.Option(help="Remove the plan records the migration created, if unchanged.")
    ] = False,
) -> None:
    """Move legacy VIP memberships into plan records (a Prefect flow run)."""
    from pipelines.flows.migrate_vip import migrate_vip, rollback_vip_migration
    from pipelines.progress import progress_listener

    ready_engine()
    if rollback:
        if dry_run or retry_quarantined:
            raise fail("--rollback takes no --dry-run or --retry-quarantined", EXIT_BAD_INPUT)
        with stop_at_once_when_interrupted():
            summary = rollback_vip_migration(batch_size=batch_size)
        typer.echo(
            f"rolled back: {summary['removed']:,} plan records removed, "
            f"{summary['kept_changed']:,} kept (moved since the migration), "
            f"{summary['quarantine_cleared']:,} quarantine rows cleared"
        )
        if summary["kept_changed"]:
            shown = ", ".join(map(str, summary["kept_changed_legacy_ids"]))
            more = " …" if summary["kept_changed"] > len(summary["kept_changed_legacy_ids"]) else ""
            typer.echo(f"  kept, by legacy id: {shown}{more}")
        return
    token = progress_listener.set(_terminal_progress())
    try:
        with stop_at_once_when_interrupted():
            summary = migrate_vip(
                dry_run=dry_run, batch_size=batch_size, retry_quarantined=retry_quarantined
            )
    finally:
        progress_listener.reset(token)
    print_migration_report(summary)


class FlowName(StrEnum):
    EXPIRE_PLANS = "expire-plans"
    CLOSE_UNPAID_ORDERS = "close-unpaid-orders"
    SETTLE_REFUNDS = "settle-refunds"
    MIGRATE_VIP = "migrate-vip"
    BUILD_WAREHOUSE = "build-warehouse"


@flows_app.command("run")
def flows_run_command(
    name: Annotated[FlowName, typer.Argument(help="The flow to run once, now.")],
) -> None:
    """Run one flow once, now, and print its report."""
    from pipelines.flows.deployments import FLOWS

    ready_engine()
    with stop_at_once_when_interrupted():
        summary = FLOWS[name.value]()
    if name is FlowName.MIGRATE_VIP:
        print_migration_report(summary)
    else:
        typer.echo(json.dumps(summary, indent=2, ensure_ascii=False))


@flows_app.command("serve")
def flows_serve_command() -> None:
    """Register the deployments with the Prefect server and run them on their schedules."""
    from prefect import serve
    from prefect.settings import PREFECT_API_URL

    from pipelines.flows.deployments import build_deployments

    if not PREFECT_API_URL.value():
        message = (
            "PREFECT_API_URL is not set; start a server with `prefect server start` and "
            "export PREFECT_API_URL=http://127.0.0.1:4200/api"
        )
        raise fail(message, EXIT_CONFIGURATION)
    ready_engine()
    serve(*build_deployments(get_settings()))


app.command("report")(report_command)


@app.command("token")
def token_command(
    user_id: Annotated[
        int, typer.Argument(min=1, max=2**63 - 1, help="The user the token signs in as.")
    ],
    hours: Annotated[float, typer.Option(min=0.01, max=24 * 30, help="Lifetime.")] = 12,
) -> None:
    """Print a bearer token for trying the API out."""
    from datetime import timedelta

    from wallet_api.auth import issue_token

    try:
        typer.echo(issue_token(user_id, get_settings(), timedelta(hours=hours)))
    except ConfigurationError as error:
        raise fail(str(error), EXIT_CONFIGURATION) from error


@app.command("serve")
def serve_command(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
) -> None:
    """Serve the wallet API (uvicorn)."""
    import uvicorn

    try:
        get_settings().jwt_signing_key()
    except ConfigurationError as error:
        raise fail(str(error), EXIT_CONFIGURATION) from error
    ready_engine()
    uvicorn.run("wallet_api.main:create_app", factory=True, host=host, port=port, workers=workers)


@app.command("demo")
def demo_command(
    users: Annotated[int, typer.Option(min=10, max=1_000_000, help="Demo users.")] = 3_000,
    seed: Annotated[int, typer.Option(help="Seed of the demo data generator.")] = 20261204,
    host: Annotated[str, typer.Option(help="Address to serve on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    serve: Annotated[bool, typer.Option(help="Serve the API when the data is ready.")] = True,
) -> None:
    """Build a demo database from generated legacy data, migrate it, and serve the API."""
    from pipelines.demo_data import write_demo_export
    from pipelines.flows.migrate_vip import migrate_vip
    from pipelines.importers import import_legacy, import_orders

    settings = get_settings()
    if settings.env != "demo":
        message = "`wallet demo` runs only with WALLET_ENV=demo (`make demo` sets it)"
        raise fail(message, EXIT_CONFIGURATION)
    engine = get_engine()
    upgrade(engine)
    export = settings.var_dir / "demo-export"
    write_demo_export(export, users=users, seed=seed)
    typer.echo(f"demo export written to {export}/ ({users:,} users, seed {seed})")
    _print_import(import_legacy(engine, export))
    _print_import([import_orders(engine, export / "payment_record.csv")])
    with stop_at_once_when_interrupted():
        print_migration_report(migrate_vip())

    user_id = _user_with_most_plans(engine)
    token = issue_demo_token(user_id)
    base = f"http://{host}:{port}"
    typer.echo(f"\nuser {user_id} has the most plans. Try:")
    typer.echo(f"  curl -H 'Authorization: Bearer {token}' '{base}/payment/service_list/'")
    typer.echo(
        f"  curl -H 'Authorization: Bearer {token}' '{base}/payment/payment_record/?record_type=3'"
    )
    typer.echo(f"  API docs: {base}/docs\n")
    if serve:
        serve_command(host=host, port=port, workers=1)


def _user_with_most_plans(engine) -> int:
    from sqlalchemy import func, select

    from wallet.tables import item_record

    with engine.connect() as connection:
        return connection.execute(
            select(item_record.c.user_id)
            .group_by(item_record.c.user_id)
            .order_by(func.count().desc(), item_record.c.user_id)
            .limit(1)
        ).scalar_one()


def issue_demo_token(user_id: int) -> str:
    from datetime import timedelta

    from wallet_api.auth import issue_token

    return issue_token(user_id, get_settings(), timedelta(hours=12))


def main() -> None:
    # Runs here report to no one outside this machine (and a temporary server's telemetry
    # only fills the terminal with connection errors offline).
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    try:
        app()
    except ConfigurationError as error:
        typer.secho(f"error: {error}", err=True, fg=typer.colors.RED)
        sys.exit(EXIT_CONFIGURATION)
    except OperationalError as error:
        typer.secho(f"error: the database is unavailable or busy: {error.orig}", err=True, fg="red")
        sys.exit(EXIT_DATABASE)
