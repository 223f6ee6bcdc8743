"""What the benchmarks share: the PostgreSQL they measure on, and where their figures go.

Every script saves its figures with `save()`: a JSON file under `bench/results/`, then the
results table in `bench/README.md` is written anew from all of them, so the table always shows
the latest run of each script, with the machine and the date it ran on.
"""

import json
import os
import platform
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine, make_url, text

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
README = BENCH_DIR / "README.md"
TABLE_START = "<!-- results: written by bench/common.py, do not edit by hand -->"
TABLE_END = "<!-- end of results -->"

# The server kept between runs, so a dataset built once serves every script.
KEPT_SERVER_DIR = PROJECT_DIR / "var" / "bench" / "postgres"

# The kept server is set up as production would run PostgreSQL on a 2-core, 24 GiB machine,
# not with initdb's small defaults (128 MB of buffers, a checkpoint every 1 GB of WAL).
PRODUCTION_SETTINGS = {
    "shared_buffers": "6GB",
    "effective_cache_size": "16GB",
    "work_mem": "32MB",
    "maintenance_work_mem": "1GB",
    "max_wal_size": "16GB",
    "checkpoint_timeout": "15min",
    "checkpoint_completion_target": "0.9",
    "random_page_cost": "1.1",
    "effective_io_concurrency": "200",
}


@dataclass(frozen=True)
class Figure:
    """One measured figure, and how it compares with the peer measured in the same run."""

    metric: str
    value: float
    unit: str
    peer: str = ""
    ratio: float | None = None
    target: str = ""
    met: bool | None = None


def postgres_admin_url() -> str:
    """`WALLET_BENCH_POSTGRES_URL`, else a pgserver kept under var/bench/postgres."""
    if url := os.environ.get("WALLET_BENCH_POSTGRES_URL"):
        return url
    import pgserver

    KEPT_SERVER_DIR.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(KEPT_SERVER_DIR, cleanup_mode=None)
    url = make_url(server.get_uri()).set(drivername="postgresql+psycopg2")
    apply_production_settings(server, url)
    return url.render_as_string(hide_password=False)


def apply_production_settings(server, url) -> None:
    """`PRODUCTION_SETTINGS` on the kept server, restarting it when a setting needs that."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        for name, value in PRODUCTION_SETTINGS.items():
            connection.execute(text(f"alter system set {name} = '{value}'"))
        connection.execute(text("select pg_reload_conf()"))
        # Read from the files now, not after the reload signal lands: a setting that only a
        # restart applies shows as not applied.
        restart = connection.scalar(
            text(
                "select count(*) > 0 from pg_file_settings where not applied and error is null"
                " and sourcefile like '%postgresql.auto.conf'"
            )
        )
    engine.dispose()
    if restart:
        # NOTE: pgserver has no public restart; its pg_ctl wrapper runs as the server's owner.
        from pgserver._commands import pg_ctl

        print("restarting the benchmark PostgreSQL with the production settings")
        pg_ctl(["-w", "-m", "fast", "restart"], pgdata=KEPT_SERVER_DIR, user=server.system_user)


def postgres_database_url(name: str) -> str:
    """The URL of database `name` on the benchmark server, created when missing."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise ValueError(f"database name {name!r}: use lower-case letters, digits and _")
    admin_url = make_url(postgres_admin_url())
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        exists = connection.scalar(
            text("select 1 from pg_database where datname = :name"), {"name": name}
        )
        if not exists:
            connection.execute(text(f'create database "{name}"'))
    admin.dispose()
    return admin_url.set(database=name).render_as_string(hide_password=False)


def machine() -> str:
    """`2 cores, Intel(R) Xeon(R) ..., 24 GiB`: what the figures were measured on."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = re.findall(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE)
        model = names[0] if names else model
    memory = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        kib = int(re.search(r"^MemTotal:\s*(\d+)", meminfo.read_text(), re.MULTILINE)[1])
        memory = f", {kib / 2**20:.0f} GiB"
    return f"{os.cpu_count()} cores, {model}{memory}"


def save(script: str, command: str, figures: list[Figure], notes: str = "") -> Path:
    """Record one script's figures and rewrite the README's results table; prints them too."""
    RESULTS_DIR.mkdir(exist_ok=True)
    record = {
        "script": script,
        "command": command,
        "machine": machine(),
        "measured_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "figures": [asdict(figure) for figure in figures],
        "notes": notes,
    }
    path = RESULTS_DIR / f"{script}.json"
    path.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    for figure in figures:
        print(format_figure(figure))
    write_results_table()
    return path


def format_figure(figure: Figure) -> str:
    line = f"{figure.metric}: {format_value(figure.value)} {figure.unit}"
    if figure.ratio is not None:
        line += f" ({figure.ratio:.2f}x {figure.peer})"
    if figure.target:
        verdict = {True: "met", False: "MISSED", None: ""}[figure.met]
        line += f" [target {figure.target}{': ' + verdict if verdict else ''}]"
    return line


def format_value(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def write_results_table() -> None:
    """The table between the markers in bench/README.md, from every saved result."""
    records = [
        json.loads(path.read_text(encoding="utf-8")) for path in sorted(RESULTS_DIR.glob("*.json"))
    ]
    lines = [
        TABLE_START,
        "| script | figure | value | ratio to peer | target | measured |",
        "|---|---|---|---|---|---|",
    ]
    for record in records:
        for figure in record["figures"]:
            ratio = figure["ratio"]
            ratio_text = f"{ratio:.2f}x {figure['peer']}" if ratio is not None else ""
            verdict = {True: " (met)", False: " (missed)", None: ""}[figure["met"]]
            target = f"{figure['target']}{verdict}" if figure["target"] else ""
            lines.append(
                f"| `{record['script']}` | {figure['metric']} "
                f"| {format_value(figure['value'])} {figure['unit']} | {ratio_text} "
                f"| {target} | {record['measured_at']} |"
            )
    machines = sorted({record["machine"] for record in records})
    lines.append("")
    lines.append("Measured on: " + "; ".join(machines) if machines else "Nothing measured yet.")
    lines.append(TABLE_END)
    table = "\n".join(lines)
    readme = README.read_text(encoding="utf-8") if README.exists() else ""
    if TABLE_START in readme and TABLE_END in readme:
        before, _, rest = readme.partition(TABLE_START)
        _, _, after = rest.partition(TABLE_END)
        readme = before + table + after
    else:
        readme = readme.rstrip("\n") + "\n\n## Results\n\n" + table + "\n"
    README.write_text(readme, encoding="utf-8")
