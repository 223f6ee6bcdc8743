"""Running the analyst notebooks top to bottom in a Jupyter kernel and saving them as HTML.

Parameters are passed the way papermill passes them: a cell tagged `injected-parameters` is
put right after the cell tagged `parameters`, so its values win.
"""

import logging
import tempfile
from collections.abc import Mapping
from pathlib import Path

import nbformat
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbconvert import HTMLExporter

from wallet.errors import WalletError
from wallet_reports.queries import NOTEBOOKS_DIR

log = logging.getLogger(__name__)

# ipykernel's own kernel spec: the Python that runs this code, i.e. the project's venv.
KERNEL_NAME = "python3"
CELL_TIMEOUT_SECONDS = 600


class NotebookFailed(WalletError):
    """A notebook cell raised; the message names the notebook and the error."""


def notebook_paths(names: list[str] | None = None) -> list[Path]:
    """The notebooks in `notebooks/`, all or those named (with or without `.ipynb`)."""
    available = {path.stem: path for path in sorted(NOTEBOOKS_DIR.glob("*.ipynb"))}
    if not names:
        return list(available.values())
    unknown = [name for name in names if name.removesuffix(".ipynb") not in available]
    if unknown:
        raise NotebookFailed(
            f"no notebook named {', '.join(unknown)}; there are {', '.join(available)}"
        )
    return [available[name.removesuffix(".ipynb")] for name in names]


def with_parameters(notebook: nbformat.NotebookNode, parameters: Mapping) -> None:
    """Add the `injected-parameters` cell after the `parameters` cell (or first, if none)."""
    source = "# Parameters\n" + "".join(
        f"{name} = {value!r}\n" for name, value in parameters.items()
    )
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
    tagged = [
        position
        for position, existing in enumerate(notebook.cells)
        if "parameters" in existing.get("metadata", {}).get("tags", [])
    ]
    notebook.cells.insert(tagged[0] + 1 if tagged else 0, cell)


def execute_notebook(
    notebook: nbformat.NotebookNode, parameters: Mapping, *, working_dir: Path
) -> None:
    """Run `notebook` top to bottom with `parameters`, its outputs kept in it.

    A failing cell raises CellExecutionError; the cells run so far keep their outputs.
    """
    with_parameters(notebook, parameters)
    # The kernel talks over Unix sockets in a private directory rather than TCP ports: nothing
    # else on the machine can reach it, and ipykernel has no plain-TCP warning to print.
    with tempfile.TemporaryDirectory(prefix="wallet-kernel-") as sockets:
        kernel = KernelManager(
            kernel_name=KERNEL_NAME, transport="ipc", ip=str(Path(sockets) / "kernel")
        )
        client = NotebookClient(
            notebook,
            km=kernel,
            timeout=CELL_TIMEOUT_SECONDS,
            resources={"metadata": {"path": str(working_dir)}},
        )
        try:
            client.execute()
        finally:
            if kernel.has_kernel:
                kernel.shutdown_kernel()


def write_html(notebook: nbformat.NotebookNode, path: Path) -> Path:
    exporter = HTMLExporter(exclude_input_prompt=True, exclude_output_prompt=True)
    body, _resources = exporter.from_notebook_node(notebook)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body, encoding="utf-8")
    return path


def run_reports(
    warehouse_path: Path,
    output_dir: Path,
    *,
    names: list[str] | None = None,
    working_dir: Path | None = None,
) -> list[Path]:
    """Run the notebooks on the warehouse as it is (not refreshed); one HTML page each."""
    parameters = {
        "warehouse_path": str(Path(warehouse_path).resolve()),
        "refresh_warehouse": False,
    }
    pages = []
    for path in notebook_paths(names):
        log.info("running %s", path.name)
        notebook = nbformat.read(path, as_version=4)
        page = output_dir / f"{path.stem}.html"
        try:
            execute_notebook(notebook, parameters, working_dir=working_dir or Path.cwd())
        except CellExecutionError as error:
            write_html(notebook, page)
            raise NotebookFailed(f"{path.name} failed (see {page}):\n{error}") from error
        pages.append(write_html(notebook, page))
    return pages
