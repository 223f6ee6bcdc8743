"""What every flow here shares: when to retry a batch, who the log names, the moves report."""

from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run

from wallet.db import is_transient
from wallet.transitions import MoveCounts


def database_hiccup(task, task_run, state) -> bool:
    """Retry a batch only when the database connection failed; every batch is safe to redo."""
    return is_transient(state.result(raise_on_failure=False))


def run_actor() -> str:
    """This flow run as the transition log names it: flow, run name and run id."""
    return f"{flow_run.flow_name}/{flow_run.name} ({flow_run.id})"


def moves_markdown(title: str, moves: MoveCounts, lines: list[str] = ()) -> str:
    rows = [
        f"| {entity} | {source} | {target} | {moved} |"
        for (entity, source, target), moved in sorted(moves.counts.items())
    ]
    table = ["| entity | from | to | rows |", "| --- | --- | --- | ---: |", *rows]
    if not rows:
        table = ["Nothing was due: no row moved."]
    return "\n".join([f"# {title}", "", *lines, *([""] if lines else []), *table]) + "\n"


def publish_moves(key: str, title: str, moves: MoveCounts, lines: list[str] = ()) -> None:
    create_markdown_artifact(moves_markdown(title, moves, lines), key=key)
