"""Load the API over real HTTP: serve it as production does, drive it with wrk, read the figures.

    with serving(database_url, workers=2, pool_size=5) as base_url:
        token = token_for(user_id)
        result = run_wrk(base_url, [("/payment/service_list/?page=1", token)], connections=32,
                         duration_s=20)
        print(result.summary())

`serving()` starts `wallet serve` (or another app factory, for a peer) on 127.0.0.1 on a free
port with WALLET_ENV=production and a JWT secret of its own, waits until `/health` answers, and
stops it on the way out. `run_wrk()` writes a Lua script that sends the given requests in a
random order (each wrk thread its own seeded order), either as fast as the connections allow or
paced towards a fixed arrival rate, and reads wrk's latency percentiles and error counts back as
JSON printed by the script's `done()`.

wrk 4 has no rate option (that is wrk2), so the rate is kept by the script's `delay()`: each wrk
thread keeps a schedule of send times, one every `threads / rate` seconds, and every connection
takes the next free slot. wrk times a request from the moment it is actually sent, so when the
server falls behind the schedule the waiting time before the send is not counted: coordinated
omission is not corrected, and the percentiles at a fixed rate are a lower bound once the
achieved rate drops below the target (`WrkResult.summary()` says so).
"""

import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from bench.common import PROJECT_DIR
from wallet.settings import Settings
from wallet_api.auth import issue_token

log = logging.getLogger(__name__)

# The key every server started here signs with, so the tokens of `token_for()` are accepted.
JWT_SECRET = secrets.token_urlsafe(48)
LOG_DIR = PROJECT_DIR / "var" / "bench" / "logs"
# The server's own output goes to a file: uvicorn writes one access-log line per request.
STARTUP_TIMEOUT_S = 60
STOP_TIMEOUT_S = 20
# A request still unanswered after this long counts as a timeout error, not a latency.
WRK_TIMEOUT_S = 10
COORDINATED_OMISSION_NOTE = (
    "wrk times each request from its actual send: coordinated omission is not corrected"
)


@dataclass(frozen=True)
class WrkResult:
    """What one wrk run measured. Latencies are of completed requests, in milliseconds."""

    requests: int
    # Connection, read, write errors and timeouts.
    errors: int
    # Answers with a status of 400 or more (what wrk counts as status errors).
    non_2xx: int
    rps: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    p90_ms: float = 0.0
    mean_ms: float = 0.0
    connections: int = 0
    duration_s: float = 0.0
    # The arrival rate asked for, per second; None when wrk sent as fast as it could.
    rate: float | None = None

    def summary(self) -> str:
        """One line for the console: throughput, percentiles, errors, and how it was paced."""
        pacing = "max throughput" if self.rate is None else f"fixed rate {self.rate:,.0f}/s"
        line = (
            f"{self.connections} connections, {pacing}: {self.rps:,.0f} req/s, "
            f"p50 {self.p50_ms:.1f} ms, p90 {self.p90_ms:.1f} ms, p99 {self.p99_ms:.1f} ms, "
            f"max {self.max_ms:.1f} ms, {self.requests:,} requests, {self.errors} errors, "
            f"{self.non_2xx} non-2xx"
        )
        if self.rate is not None:
            line += f" ({COORDINATED_OMISSION_NOTE}"
            if self.rps < 0.95 * self.rate:
                line += "; the achieved rate fell short, so these percentiles flatter"
            line += ")"
        return line


def token_for(
    user_id: int, jwt_secret: str = JWT_SECRET, lifetime: timedelta = timedelta(hours=6)
) -> str:
    """A bearer token that servers started by `serving()` (with the same secret) accept."""
    return issue_token(user_id, Settings(env="production", jwt_secret=jwt_secret), lifetime)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def serving(
    database_url: str,
    *,
    workers: int = 2,
    pool_size: int = 5,
    max_overflow: int = 10,
    app: str | None = None,
    jwt_secret: str = JWT_SECRET,
) -> Iterator[str]:
    """Serve the API on 127.0.0.1 configured for production; yields its base URL.

    `app=None` runs `wallet serve --workers N`; otherwise `app` is an app factory
    (`module:function`) run by uvicorn with the same options, e.g. the peer of a benchmark.
    The database must already be at the schema's head revision.
    """
    port = free_port()
    if app is None:
        command = [_wallet_command(), "serve"]
    else:
        command = [sys.executable, "-m", "uvicorn", app, "--factory"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    environment = os.environ | {
        "WALLET_ENV": "production",
        "WALLET_DATABASE_URL": database_url,
        "WALLET_JWT_SECRET": jwt_secret,
        "WALLET_DB_POOL_SIZE": str(pool_size),
        "WALLET_DB_MAX_OVERFLOW": str(max_overflow),
    }
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log_path = LOG_DIR / f"serve-{port}.log"
    base_url = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log_file:
        server = subprocess.Popen(
            command,
            cwd=PROJECT_DIR,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its workers form a group that we stop together
        )
        log.info("serving %s with %s (pid %s, log %s)", base_url, command, server.pid, log_path)
        try:
            _wait_until_healthy(base_url, server, log_path)
            yield base_url
        finally:
            _stop(server)


def _wallet_command() -> str:
    beside_python = Path(sys.executable).with_name("wallet")
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("wallet")
    if found is None:
        raise RuntimeError("no `wallet` command next to this Python or on PATH; run make install")
    return found


def _wait_until_healthy(base_url: str, server: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(
                f"the server exited with {server.returncode} before answering; "
                f"its output ends with:\n{_tail(log_path)}"
            )
        try:
            with urllib.request.urlopen(f"{base_url}/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    _stop(server)
    raise RuntimeError(
        f"the server did not answer /health within {STARTUP_TIMEOUT_S} s; "
        f"its output ends with:\n{_tail(log_path)}"
    )


def _stop(server: subprocess.Popen) -> None:
    """SIGTERM to the server's process group (uvicorn stops its workers), SIGKILL if it hangs."""
    if server.poll() is not None:
        return
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        log.warning(
            "server pid %s ignored SIGTERM for %s s; killing it", server.pid, STOP_TIMEOUT_S
        )
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def _tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def run_wrk(
    base_url: str,
    requests: Sequence[tuple[str, str]],
    connections: int,
    duration_s: float,
    rate: float | None = None,
    threads: int = 1,
) -> WrkResult:
    """Send `requests` (path with query, bearer token), picked at random, for `duration_s`.

    Without `rate`, every connection sends its next request as soon as the last is answered
    (the maximum throughput at `connections`); with `rate`, sends are paced towards that many
    requests per second in total (see the module's note on coordinated omission).
    """
    if not requests:
        raise ValueError("run_wrk needs at least one request")
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk is not installed: apt-get install wrk (Debian's package)")
    threads = max(1, min(threads, connections))
    with tempfile.TemporaryDirectory(prefix="wallet-wrk-") as folder:
        requests_path = Path(folder) / "requests.tsv"
        requests_path.write_text(
            "".join(f"{path}\t{token}\n" for path, token in requests), encoding="utf-8"
        )
        script_path = Path(folder) / "load.lua"
        per_thread_rate = 0.0 if rate is None else rate / threads
        script_path.write_text(_lua_script(requests_path, per_thread_rate), encoding="utf-8")
        command = [
            wrk,
            f"--threads={threads}",
            f"--connections={connections}",
            f"--duration={max(1, round(duration_s))}s",
            f"--timeout={WRK_TIMEOUT_S}s",
            f"--script={script_path}",
            base_url,
        ]
        finished = subprocess.run(command, capture_output=True, text=True, check=False)
    figures = _read_figures(finished)
    duration = figures["duration_us"] / 1e6
    return WrkResult(
        requests=figures["requests"],
        errors=figures["connect_errors"]
        + figures["read_errors"]
        + figures["write_errors"]
        + figures["timeouts"],
        non_2xx=figures["non_2xx"],
        rps=figures["requests"] / duration if duration else 0.0,
        p50_ms=figures["p50_us"] / 1000,
        p99_ms=figures["p99_us"] / 1000,
        max_ms=figures["max_us"] / 1000,
        p90_ms=figures["p90_us"] / 1000,
        mean_ms=figures["mean_us"] / 1000,
        connections=connections,
        duration_s=duration,
        rate=rate,
    )


RESULT_MARK = "WALLET_WRK_RESULT "


def _read_figures(finished: subprocess.CompletedProcess) -> dict:
    for line in finished.stdout.splitlines():
        if line.startswith(RESULT_MARK):
            return json.loads(line.removeprefix(RESULT_MARK))
    raise RuntimeError(
        f"wrk exited with {finished.returncode} without figures:\n"
        f"{finished.stdout[-2000:]}{finished.stderr[-2000:]}"
    )


def _lua_script(requests_path: Path, per_thread_rate: float) -> str:
    """The wrk script: random requests from the file, optionally paced, figures as JSON."""
    pacing = PACING_LUA if per_thread_rate > 0 else ""
    return (
        LUA_TEMPLATE.replace("{requests_path}", json.dumps(str(requests_path)))
        .replace("{per_thread_rate}", repr(per_thread_rate))
        .replace("{pacing}", pacing)
        .replace("{result_mark}", json.dumps(RESULT_MARK))
    )


# Lua strings from json.dumps are valid Lua string literals for plain paths.
LUA_TEMPLATE = """-- Written by bench/load.py for one wrk run.
local REQUESTS_PATH = {requests_path}
local PER_THREAD_RATE = {per_thread_rate}

local started_threads = {}

function setup(thread)
  table.insert(started_threads, thread)
  thread:set("thread_number", #started_threads)
end

local prepared = {}

function init(args)
  for line in io.lines(REQUESTS_PATH) do
    local path, token = line:match("^(%S+)\\t(%S+)$")
    prepared[#prepared + 1] = wrk.format("GET", path, {["Authorization"] = "Bearer " .. token})
  end
  math.randomseed(20261204 + 7919 * thread_number)
end

function request()
  return prepared[math.random(#prepared)]
end
{pacing}
function done(summary, latency, requests)
  local errors = summary.errors
  io.write({result_mark} .. string.format(
    '{"requests": %d, "duration_us": %d, "connect_errors": %d, "read_errors": %d, '
      .. '"write_errors": %d, "timeouts": %d, "non_2xx": %d, "p50_us": %d, "p90_us": %d, '
      .. '"p99_us": %d, "max_us": %d, "mean_us": %.1f}\\n',
    summary.requests, summary.duration, errors.connect, errors.read, errors.write,
    errors.timeout, errors.status, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean))
end
"""

# Every connection of a thread takes the next slot of the thread's schedule; a slot already in
# the past is sent at once (catching up), so the rate holds while the server keeps up.
PACING_LUA = """
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } wallet_bench_timespec;
int clock_gettime(int clock_id, wallet_bench_timespec *now);
]]
local CLOCK_MONOTONIC = 1
local clock_reading = ffi.new("wallet_bench_timespec")
local interval_s = 1 / PER_THREAD_RATE
local next_slot_s = nil

local function now_s()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, clock_reading)
  return tonumber(clock_reading.tv_sec) + tonumber(clock_reading.tv_nsec) / 1e9
end

function delay()
  local now = now_s()
  if next_slot_s == nil then
    next_slot_s = now
  end
  local wait_s = next_slot_s - now
  next_slot_s = next_slot_s + interval_s
  if wait_s <= 0 then
    return 0
  end
  return math.floor(wait_s * 1000 + 0.5)
end
"""
