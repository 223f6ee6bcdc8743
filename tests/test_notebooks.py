"""The analyst notebooks, run top to bottom in a real Jupyter kernel by `wallet report`.

One backend (SQLite) is enough here: the reports' numbers are checked on both backends in
test_reporting.py; this proves every cell runs and every page is written.
"""

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import nbformat
import pytest

from tests.test_reporting import FLOWS_RAN_AT, release, run_scheduled_moves
from wallet.db import make_engine
from wallet.settings import Settings
from wallet_reports.notebooks import NOTEBOOKS_DIR

NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
# `wallet report` as the lead will register it in wallet_cli.main: the same function, run by typer.
REPORT = "import typer; from wallet_cli.report import report_command; typer.run(report_command)"


def run_report(directory: Path, database_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if not key.startswith("WALLET_")}
    env.update(
        WALLET_DATABASE_URL=database_url,
        WALLET_VAR_DIR=str(directory / "var"),
        WALLET_WAREHOUSE_PATH=str(directory / "var" / "warehouse.duckdb"),
    )
    return subprocess.run(
        [sys.executable, "-c", REPORT, *args],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


@pytest.fixture(scope="module")
def fixture_database(tmp_path_factory, legacy_fixture_dir) -> tuple[Path, str]:
    directory = tmp_path_factory.mktemp("notebooks")
    database_url = f"sqlite:///{directory / 'wallet.db'}"
    engine = make_engine(database_url, Settings(_env_file=None))
    release(engine, legacy_fixture_dir)
    run_scheduled_moves(engine, legacy_fixture_dir, FLOWS_RAN_AT)
    engine.dispose()
    return directory, database_url


def test_notebooks_are_stored_without_outputs_and_with_a_parameters_cell():
    assert {path.stem for path in NOTEBOOKS} >= {"plan_status", "order_status", "migration_report"}
    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        code = [cell for cell in notebook.cells if cell.cell_type == "code"]
        assert "parameters" in code[0].metadata.get("tags", []), path.name
        assert all(not cell.outputs and cell.execution_count is None for cell in code), path.name


def test_wallet_report_runs_every_notebook_and_writes_html(fixture_database):
    directory, database_url = fixture_database

    result = run_report(directory, database_url)

    assert result.returncode == 0, result.stderr[-3000:]
    pages = [Path(line) for line in result.stdout.splitlines() if line.endswith(".html")]
    assert sorted(page.name for page in pages) == sorted(f"{path.stem}.html" for path in NOTEBOOKS)
    assert all(page.parent == directory / "var" / "reports" for page in pages)
    assert "warehouse" in result.stdout and "refreshed" in result.stdout
    for page in pages:
        html = page.read_text(encoding="utf-8")
        assert html.count("data:image/png;base64") >= 2, page.name
        assert "Traceback" not in html, page.name
    migration = (directory / "var" / "reports" / "migration_report.html").read_text()
    assert "expire_before_active" in migration
    # The command refreshed the warehouse once; the notebooks ran with refresh_warehouse=False.
    with duckdb.connect(str(directory / "var" / "warehouse.duckdb"), read_only=True) as warehouse:
        assert warehouse.execute("select count(*) from warehouse_build").fetchone() == (1,)


def test_wallet_report_refuses_an_unknown_notebook(fixture_database):
    directory, database_url = fixture_database

    result = run_report(directory, database_url, "no_such_report")

    assert result.returncode == 2
    assert "no notebook named no_such_report" in result.stderr
