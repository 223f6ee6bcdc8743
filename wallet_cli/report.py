"""`wallet report`: refresh the warehouse, run the analyst notebooks, save them as HTML."""

from pathlib import Path
from typing import Annotated

import typer

# A notebook cell failed; its page is still written, with the error, for reading.
EXIT_NOTEBOOK_FAILED = 5


def report_command(
    notebooks: Annotated[
        list[str] | None,
        typer.Argument(help="Notebooks to run, e.g. plan_status; all in notebooks/ when none."),
    ] = None,
    refresh: Annotated[
        bool, typer.Option(help="Snapshot the database into the warehouse first.")
    ] = True,
    output_dir: Annotated[
        Path | None, typer.Option(help="Where the HTML pages go (default: WALLET_VAR_DIR/reports).")
    ] = None,
) -> None:
    """Run the analyst notebooks on the configured database and write one HTML page each."""
    from pipelines.warehouse import Warehouse, build_warehouse
    from wallet.settings import get_settings
    from wallet_cli.main import EXIT_BAD_INPUT, EXIT_CONFIGURATION, fail, ready_engine
    from wallet_reports.notebooks import NotebookFailed, notebook_paths, run_reports

    settings = get_settings()
    try:
        notebook_paths(notebooks)
    except NotebookFailed as error:
        raise fail(str(error), EXIT_BAD_INPUT) from error
    warehouse = Warehouse.from_settings(settings)
    if not refresh and not warehouse.path.is_file():
        message = (
            f"no warehouse at {warehouse.path} (WALLET_WAREHOUSE_PATH); run without --no-refresh"
        )
        raise fail(message, EXIT_CONFIGURATION)
    if refresh:
        ready_engine()
        built = build_warehouse(warehouse, settings.database_url)
        typer.echo(
            f"warehouse {warehouse.path} refreshed in {built.seconds:.1f} s: "
            + ", ".join(f"{table} {rows:,}" for table, rows in built.rows.items())
        )
    try:
        pages = run_reports(
            warehouse.path, output_dir or settings.var_dir / "reports", names=notebooks
        )
    except NotebookFailed as error:
        raise fail(str(error), EXIT_NOTEBOOK_FAILED) from error
    for page in pages:
        typer.echo(str(page))
