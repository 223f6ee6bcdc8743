"""A hook through which a terminal can follow a flow's batches as they land."""

from collections.abc import Callable
from contextvars import ContextVar

# Called with (rows done, rows in all) after every batch; set by the CLI on a terminal.
ProgressListener = Callable[[int, int], None]
progress_listener: ContextVar[ProgressListener | None] = ContextVar(
    "progress_listener", default=None
)


def report_progress(done: int, total: int) -> None:
    listener = progress_listener.get()
    if listener is not None:
        listener(done, total)
