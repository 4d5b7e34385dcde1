"""Run Hearth's load benchmarks: `python -m bench.run [--scenario NAME ...] [--smoke] ...`.

Every figure is reported beside the floor (a bare Flask route under the same gunicorn command)
measured in the same run; see bench/README.md for what each scenario does and how to read it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import seed
from bench.load import Load, Plan, Samples
from bench.servers import ROOT, Gunicorn, free_port, system_cpu, tree_cpu_seconds

SCENARIOS = ("floor", "sql", "bearer", "refresh", "flow", "validation", "cleanup")
PACKAGES = (
    "flask",
    "flask-login",
    "werkzeug",
    "gunicorn",
    "sqlalchemy",
    "authlib",
    "joserfc",
    "orjson",
    "psycopg",
)
TARGETS = {
    "sql_per_flow": 15,
    "bearer_share": 0.5,
    "refresh_share": 0.3,
    "validation_growth": 1.3,
    "cleanup_p99_growth": 2.0,
}


@dataclass
class Options:
    scenarios: list[str]
    duration: float
    warmup: float
    concurrency: int
    rounds: int
    workers: int
    latency_connections: int
    latency_duration: float
    latency_rate: float
    tokens_small: int
    tokens: int
    cleanup_rows: int
    cleanup_timeout: float
    cleanup_options: list[str]
    postgres_url: str | None
    smoke: bool
    json_path: Path | None
    py_spy: Path | None
    keep: bool


def parse(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument(
        "--scenario",
        action="append",
        choices=SCENARIOS,
        help="run only these (repeatable); the floor always runs, at the start and at the end",
    )
    parser.add_argument("--duration", type=float, help="measured seconds per phase (default 10)")
    parser.add_argument("--warmup", type=float, help="unmeasured seconds before each phase")
    parser.add_argument("--concurrency", type=int, default=4, help="connections, throughput")
    parser.add_argument(
        "--rounds", type=int, help="floor/scenario slice pairs per throughput phase (default 3)"
    )
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--latency-connections", type=int, default=4)
    parser.add_argument(
        "--latency-duration", type=float, help="measured seconds per paced phase (default 30)"
    )
    parser.add_argument(
        "--latency-rate", type=float, default=100.0, help="paced requests/s, latency phases"
    )
    parser.add_argument("--tokens", type=int, help="live tokens, large validation (10^6)")
    parser.add_argument("--tokens-small", type=int, help="live tokens, small validation (10^3)")
    parser.add_argument("--cleanup-rows", type=int, help="expired rows for cleanup (10^6)")
    parser.add_argument("--cleanup-timeout", type=float, default=1800.0)
    parser.add_argument(
        "--cleanup-option",
        action="append",
        default=[],
        metavar="OPTION",
        help="pass this option to `hearth cleanup` (repeatable), e.g. --cleanup-option=--batch=250",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("BENCH_POSTGRES_URL") or None,
        help="admin URL of a PostgreSQL server to create a fresh database in "
        "(default: $BENCH_POSTGRES_URL; else SQLite in a temporary file)",
    )
    parser.add_argument(
        "--smoke", action="store_true", help="every scenario for ~1-2 s on tiny datasets"
    )
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the run's temporary directory")
    parser.add_argument(
        "--py-spy",
        type=Path,
        help="sample the API workers with py-spy during throughput phases; write collapsed "
        "stacks here (summarise with `python -m bench.profile --collapsed DIR/NAME-*`)",
    )
    args = parser.parse_args(argv)
    smoke = bool(args.smoke)
    return Options(
        scenarios=list(dict.fromkeys(["floor", *(args.scenario or SCENARIOS)])),
        duration=args.duration or (1.5 if smoke else 10.0),
        warmup=args.warmup if args.warmup is not None else (0.5 if smoke else 2.0),
        concurrency=args.concurrency,
        rounds=args.rounds or (1 if smoke else 3),
        workers=args.workers,
        latency_connections=args.latency_connections,
        latency_duration=args.latency_duration or (1.5 if smoke else 30.0),
        latency_rate=args.latency_rate,
        tokens_small=args.tokens_small or (100 if smoke else 1000),
        tokens=args.tokens or (1000 if smoke else 1_000_000),
        cleanup_rows=args.cleanup_rows or (1000 if smoke else 1_000_000),
        cleanup_timeout=min(args.cleanup_timeout, 60.0) if smoke else args.cleanup_timeout,
        cleanup_options=list(args.cleanup_option),
        postgres_url=args.postgres_url,
        smoke=smoke,
        json_path=args.json,
        py_spy=args.py_spy,
        keep=args.keep,
    )


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile of sorted `values` (0 when empty)."""
    if not values:
        return 0.0
    rank = max(0, min(len(values) - 1, round(share * len(values) + 0.5) - 1))
    return values[rank]


def machine() -> dict[str, Any]:
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    revision = os.environ.get("BENCH_REVISION") or (
        f"{commit}{' (with uncommitted changes)' if dirty else ''}"
    )
    return {
        "nproc": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "kernel": platform.release(),
        "packages": versions,
        "revision": revision,
        "loadavg_start": Path("/proc/loadavg").read_text().split()[:3],
    }


class Run:
    """One benchmark run: its temporary directory, settings, servers and results."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.workdir = Path(tempfile.mkdtemp(prefix="hearth-bench-"))
        (self.workdir / "instance").mkdir()
        self.api_port = free_port()
        self.floor_port = free_port()
        self.settings = seed.Settings(
            self.workdir,
            api_address=f"http://127.0.0.1:{self.api_port}",
            web_address=f"http://127.0.0.1:{free_port()}",
        )
        self.results: list[dict[str, Any]] = []
        self.floor_server: Gunicorn | None = None
        self.postmaster: int | None = None  # a local PostgreSQL server's pid, for its CPU time
        self.sql: dict[str, Any] = {}
        self.databases: list[seed.Database] = []
        self.versions: dict[str, str] = {}
        self.commands: dict[str, str] = {}

    # --- servers -------------------------------------------------------------------------------

    @contextmanager
    def server(self, app: str, port: int, env: dict[str, str], probe: str) -> Iterator[Gunicorn]:
        gunicorn = Gunicorn(
            app, port, env, self.options.workers, self.workdir / "gunicorn.log", probe
        )
        self.commands[app] = " ".join(gunicorn.command)
        gunicorn.start()
        try:
            yield gunicorn
        finally:
            gunicorn.stop()

    def api(self, database: seed.Database) -> AbstractContextManager[Gunicorn]:
        env = self.settings.environ(database.url)
        return self.server("wsgi:api", self.api_port, env, "/health/ready")

    # --- measuring -----------------------------------------------------------------------------

    def window(
        self,
        server: Gunicorn,
        scenario: str,
        states: list[dict[str, Any]],
        *,
        warmup: float,
        duration: float,
        paced: bool = False,
        profile: str | None = None,
    ) -> Window:
        """Load `server` for warm-up + duration seconds; return what the measured part saw."""
        rate = self.options.latency_rate / len(states) if paced else None
        load = Load(Plan(scenario, server.port, states, warmup, duration, rate))
        load.start()
        _sleep_until(load.measure_from)
        before = _cpu_snapshot(server, self.postmaster)
        spies = self.spy(server, profile, duration) if profile else []
        _sleep_until(load.measure_to)
        after = _cpu_snapshot(server, self.postmaster)
        for spy in spies:
            spy.wait(timeout=duration + 30)
        return Window(load.join(), before, after)

    def spy(self, server: Gunicorn, name: str, duration: float) -> list[subprocess.Popen[bytes]]:
        """Sample each worker with py-spy for the measured window (collapsed stacks)."""
        directory = self.options.py_spy
        assert directory is not None
        directory.mkdir(parents=True, exist_ok=True)
        py_spy = Path(sys.executable).with_name("py-spy")
        return [
            subprocess.Popen(
                [
                    str(py_spy),
                    "record",
                    "--pid",
                    str(pid),
                    "--duration",
                    str(max(1, int(duration))),
                    "--rate",
                    "250",
                    "--nonblocking",
                    "--format",
                    "raw",
                    "--output",
                    str(directory / f"{name}-{pid}-{time.monotonic_ns()}.txt"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for pid in server.worker_pids()
        ]

    def phase(
        self,
        name: str,
        server: Gunicorn,
        scenario: str,
        states: list[dict[str, Any]],
        *,
        paced: bool = False,
        unit: str = "request",
        note: str = "",
    ) -> dict[str, Any]:
        """Run one load phase against `server`; record its throughput, latency and CPU.

        A throughput phase is cut into `--rounds` slices, each right after a slice of load on
        the floor server: the machine's speed drifts, and the pair shares the drift.
        """
        options = self.options
        if paced or self.floor_server is None:
            windows = [
                self.window(
                    server,
                    scenario,
                    states,
                    warmup=options.warmup,
                    duration=options.latency_duration if paced else options.duration,
                    paced=paced,
                )
            ]
            result = summarize(name, windows, unit=unit, paced=paced)
        else:
            windows, floors = [], []
            slice_seconds = options.duration / options.rounds
            floor_states = [{"path": "/hello"}] * len(states)
            for round_ in range(options.rounds):
                warmup = options.warmup if round_ == 0 else min(options.warmup, 0.5)
                floors.append(
                    self.window(
                        self.floor_server,
                        "get",
                        floor_states,
                        warmup=warmup,
                        duration=slice_seconds,
                    )
                )
                windows.append(
                    self.window(
                        server,
                        scenario,
                        states,
                        warmup=warmup,
                        duration=slice_seconds,
                        profile=name if options.py_spy else None,
                    )
                )
                states = [sample.state for sample in windows[-1].samples]
            result = summarize(name, windows, unit=unit)
            paired = summarize(f"{name} (paired floor)", floors)
            result["paired_floor"] = {
                key: paired[key]
                for key in (
                    "throughput",
                    "service_p50_ms",
                    "service_p99_ms",
                    "server_cpu_ms",
                    "client_cpu_ms",
                    "errors",
                )
            }
            result["errors"] += paired["errors"]
            result["error_samples"] += paired["error_samples"]
        result["note"] = note
        self._record(result)
        return result

    def _record(self, result: dict[str, Any]) -> None:
        self.results.append(result)
        log(
            f"{result['name']}: {result['throughput']:.1f} {result['unit']}s/s, "
            f"p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms, "
            f"server CPU {result['server_cpu_ms']:.3f} ms/{result['unit']}, "
            f"errors {result['errors']}"
        )
        for sample in result["error_samples"]:
            log(f"  error: {sample}")

    # --- scenarios -----------------------------------------------------------------------------

    @contextmanager
    def floor(self) -> Iterator[Gunicorn]:
        """The floor server, up for the whole run: measured at the start, the end, and in pairs."""
        env = self.settings.environ("sqlite://")
        with self.server("bench.floor:app", self.floor_port, env, "/hello") as server:
            states = [{"path": "/hello"}] * self.options.concurrency
            self.phase("floor", server, "get", states, note="bare Flask route")
            self.floor_server = server
            yield server
            self.floor_server = None
            self.phase("floor_end", server, "get", states, note="bare Flask route")

    def main_scenarios(self) -> None:
        """sql, bearer, refresh and flow share one database seeded with a few accounts."""
        options = self.options
        wanted = set(options.scenarios)
        database = self.database("main")
        with seed.in_process_app(self.settings, database.url) as app:
            log("seeding the main database")
            seeded = seed.seed(app, accounts=max(options.concurrency, 2))
            if "sql" in wanted:
                self.sql = count_statements(app, seeded)
                log(f"SQL statements per flow: {self.sql['flow']['total']} {self.sql['flow']}")
            bearer = seed.mint(app, seeded, options.concurrency)
            chains = seed.mint(app, seeded, options.concurrency)
        flow_states = [
            {
                "session": seeded.sessions[n],
                "client_id": seeded.client_id,
                "authorization": seeded.authorization,
                "redirect_uri": seed.REDIRECT_URI,
                "scope": seed.SCOPE,
            }
            for n in range(options.concurrency)
        ]
        if not wanted & {"bearer", "refresh", "flow"}:
            return
        with self.api(database) as server:
            if "bearer" in wanted:
                # Hearth's own per-request base (hooks, logging, no auth, no SQL), so the gap
                # between the floor and a bearer read can be split into framework and lookup.
                states = [{"path": "/health/alive", "headers": {}} for _ in bearer]
                self.phase(
                    "api_alive", server, "get", states, note="GET /health/alive, no auth, no SQL"
                )
                for name, path in (
                    ("bearer_self", "/api/accounts/self"),
                    ("bearer_threads", "/api/threads"),
                ):
                    states = [
                        {"path": path, "headers": _bearer(token["access_token"])}
                        for token in bearer
                    ]
                    self.phase(name, server, "get", states, note=f"GET {path}")
            if "refresh" in wanted:
                states = [
                    {"refresh_token": token["refresh_token"], "authorization": seeded.authorization}
                    for token in chains
                ]
                self.phase(
                    "refresh", server, "refresh", states, note="one rotation chain per connection"
                )
            if "flow" in wanted:
                self.phase(
                    "flow",
                    server,
                    "flow",
                    flow_states,
                    unit="flow",
                    note="authorize, consent GET, consent POST, token",
                )

    def large_scenarios(self) -> None:
        """validation and cleanup: bearer-read latency as the token table grows and shrinks."""
        options = self.options
        wanted = set(options.scenarios)
        database = self.database("large")
        audience = f"{self.settings.api_address}/api"
        with seed.in_process_app(self.settings, database.url) as app:
            seeded = seed.seed(app, accounts=options.latency_connections, threads=5, replies=1)
            engine = seed.engine_of(app)
            if "validation" in wanted:
                self._top_up(engine, seeded, audience, options.tokens_small)
        if "validation" in wanted:
            self.latency_phase(database, seeded, "validation_small")
            with seed.in_process_app(self.settings, database.url) as app:
                self._top_up(seed.engine_of(app), seeded, audience, options.tokens)
            self.latency_phase(database, seeded, "validation_large")
        if "cleanup" in wanted:
            with seed.in_process_app(self.settings, database.url) as app:
                took = seed.bulk_tokens(
                    seed.engine_of(app),
                    seeded,
                    audience,
                    options.cleanup_rows,
                    expired=True,
                    progress=log,
                )
                log(f"inserted {options.cleanup_rows} expired tokens in {took:.1f} s")
            self.cleanup_phase(database, seeded)

    def _top_up(self, engine: Any, seeded: seed.Seeded, audience: str, target: int) -> None:
        missing = target - seed.live_tokens(engine)
        if missing > 0:
            took = seed.bulk_tokens(engine, seeded, audience, missing, expired=False, progress=log)
            log(f"inserted {missing} live tokens in {took:.1f} s")
        log(f"live tokens stored: {seed.live_tokens(engine)}")

    def _reader_states(
        self, database: seed.Database, seeded: seed.Seeded
    ) -> tuple[list[dict[str, Any]], int]:
        """Bearer readers with fresh tokens (access tokens live 15 minutes), and the live count."""
        with seed.in_process_app(self.settings, database.url) as app:
            tokens = seed.mint(app, seeded, self.options.latency_connections)
            live = seed.live_tokens(seed.engine_of(app))
        return seed.self_readers(tokens), live

    def latency_phase(self, database: seed.Database, seeded: seed.Seeded, name: str) -> None:
        states, live = self._reader_states(database, seeded)
        with self.api(database) as server:
            result = self.phase(
                name,
                server,
                "get",
                states,
                paced=True,
                note=f"GET /api/accounts/self, {live} live tokens stored",
            )
            result["live_tokens"] = live

    def cleanup_phase(self, database: seed.Database, seeded: seed.Seeded) -> None:
        """Bearer-read latency while idle, then while `hearth cleanup` runs next to the API."""
        options = self.options
        states, _live = self._reader_states(database, seeded)
        env = self.settings.environ(database.url)
        # `hearth cleanup`, imported from this tree: the console script would import whatever
        # tree the virtual environment's editable install points at, not a snapshot's.
        command = [
            sys.executable,
            "-c",
            "from app.cli import main; main()",
            "cleanup",
            *options.cleanup_options,
        ]
        self.commands["cleanup"] = " ".join(["hearth", "cleanup", *options.cleanup_options])
        with self.api(database) as server:
            self.phase(
                "cleanup_idle",
                server,
                "get",
                states,
                paced=True,
                note="GET /api/accounts/self, nothing else running",
            )
            rate = options.latency_rate / len(states)
            plan = Plan(
                "get",
                server.port,
                states,
                options.warmup,
                options.cleanup_timeout + 60,
                rate,
                open_ended=True,
            )
            load = Load(plan)
            load.start()
            _sleep_until(load.measure_from)
            before = _cpu_snapshot(server, self.postmaster)
            began = time.monotonic()
            output_path = self.workdir / "cleanup.out"
            with output_path.open("w") as output_file:
                process = subprocess.Popen(
                    command, cwd=ROOT, env=env, stdout=output_file, stderr=subprocess.STDOUT
                )
            status, cleanup_cpu = _wait(process, options.cleanup_timeout)
            ended = time.monotonic()
            output = output_path.read_text(errors="replace")
            after = _cpu_snapshot(server, self.postmaster)
            load.stop()
            samples = load.join()
        result = summarize("cleanup_during", [Window(samples, before, after)], paced=True)
        counts = dict(part.split("=", 1) for part in output.split() if "=" in part)
        result.update(
            note="GET /api/accounts/self while `hearth cleanup` runs",
            cleanup_seconds=ended - began,
            cleanup_exit=status,
            cleanup_cpu_seconds=round(cleanup_cpu, 2),
            cleanup_output=output.strip()[-500:],
            cleanup_deleted_tokens=int(counts.get("tokens", "0")),
        )
        if status != 0 or int(counts.get("tokens", "0")) < options.cleanup_rows:
            result["errors"] += 1
            result["error_samples"].append(f"hearth cleanup: exit {status}: {output[-500:]}")
        self._record(result)
        log(
            f"hearth cleanup deleted {result['cleanup_deleted_tokens']} tokens "
            f"in {result['cleanup_seconds']:.1f} s using {cleanup_cpu:.1f} s of CPU"
        )

    def database(self, label: str) -> seed.Database:
        database = seed.fresh_database(self.workdir, self.options.postgres_url, label)
        self.databases.append(database)
        if not self.versions:
            self.versions = seed.server_versions(database)
            self.postmaster = seed.postmaster_pid(database)
        return database

    def close(self) -> None:
        for database in self.databases:
            try:
                database.drop()
            except Exception as error:  # a failed drop must not hide the results
                log(f"could not drop {database.name}: {error}")
        if not self.options.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _wait(process: subprocess.Popen[bytes], timeout: float) -> tuple[int, float]:
    """Wait for `process` (killing it after `timeout`); return its exit status and CPU seconds."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid == process.pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            return process.returncode, usage.ru_utime + usage.ru_stime
        if time.monotonic() > deadline:
            process.kill()
        time.sleep(0.05)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _sleep_until(moment: float) -> None:
    delay = moment - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def _cpu_snapshot(server: Gunicorn, postmaster: int | None) -> dict[str, Any]:
    busy, total = system_cpu()
    return {
        "at": time.monotonic(),
        "server": server.cpu(),
        "database": tree_cpu_seconds(postmaster) if postmaster else 0.0,
        "workers": sorted(server.worker_pids()),
        "busy": busy,
        "total": total,
    }


@dataclass
class Window:
    """One measured stretch of load: what the connections saw, and CPU before and after."""

    samples: list[Samples]
    before: dict[str, Any]
    after: dict[str, Any]


def summarize(
    name: str,
    windows: list[Window],
    *,
    unit: str = "request",
    paced: bool = False,
) -> dict[str, Any]:
    """Throughput, latency percentiles and CPU per operation over the measured windows."""
    latencies: list[float] = []
    service: list[float] = []
    seconds_slots: dict[int, list[tuple[float, float]]] = {}
    requests = 0
    seconds = server_cpu = database_cpu = client_cpu = busy = capacity = 0.0
    late = errors = 0
    error_samples: list[str] = []
    restarted = False
    offset = 0.0
    for window in windows:
        start, end = window.before["at"], window.after["at"]
        for sample in window.samples:
            per_step = sample.requests // sample.steps if sample.steps else 1
            for ended, latency, took in zip(
                sample.ends, sample.latencies, sample.service, strict=True
            ):
                if start <= ended <= end:
                    latencies.append(latency)
                    service.append(took)
                    requests += per_step
                    slot = int(offset + ended - start)
                    seconds_slots.setdefault(slot, []).append((latency, took))
            late += sample.late
            errors += sample.errors
            error_samples += sample.error_samples
            # The connection measured a little longer than the window; scale to the window.
            measured = max(1e-9, sample.measured_to - sample.measured_from)
            client_cpu += sample.cpu_seconds * min(1.0, (end - start) / measured)
        seconds += end - start
        offset += end - start
        server_cpu += window.after["server"] - window.before["server"]
        database_cpu += window.after["database"] - window.before["database"]
        busy += window.after["busy"] - window.before["busy"]
        capacity += window.after["total"] - window.before["total"]
        restarted = restarted or window.before["workers"] != window.after["workers"]
    latencies.sort()
    service.sort()
    steps = len(latencies)
    return {
        "name": name,
        "unit": unit,
        "paced": paced,
        "seconds": round(seconds, 3),
        "windows": len(windows),
        "steps": steps,
        "requests": requests,
        "throughput": steps / seconds if seconds > 0 else 0.0,
        "requests_per_second": requests / seconds if seconds > 0 else 0.0,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "max_ms": (latencies[-1] if latencies else 0.0) * 1000,
        "service_p50_ms": percentile(service, 0.50) * 1000,
        "service_p99_ms": percentile(service, 0.99) * 1000,
        "late": late,
        "errors": errors,
        "error_samples": error_samples[:10],
        "server_cpu_ms": server_cpu * 1000 / steps if steps else 0.0,
        # PostgreSQL's own CPU (SQLite works inside the gunicorn workers, so 0 there).
        "database_cpu_ms": database_cpu * 1000 / steps if steps else 0.0,
        "client_cpu_ms": client_cpu * 1000 / steps if steps else 0.0,
        # CPU the machine spent on anything but the server and this load: other processes
        # (other test runs on a shared machine, `hearth cleanup` in the cleanup phase).
        "other_cpu_share": max(0.0, busy - server_cpu - database_cpu - client_cpu) / capacity
        if capacity
        else 0.0,
        "workers_restarted": restarted,
        "connections": len(windows[0].samples) if windows else 0,
        # Second by second: [steps, p50, max, service p50, service max] (ms), to tell a steady
        # cost from stalls.
        "timeline": [_second(slot) for _slot_index, slot in sorted(seconds_slots.items())],
    }


def _second(slot: list[tuple[float, float]]) -> list[float]:
    latencies = sorted(latency for latency, _service in slot)
    service = sorted(busy for _latency, busy in slot)
    return [
        len(slot),
        *(round(value * 1000, 2) for value in (percentile(latencies, 0.5), latencies[-1])),
        *(round(value * 1000, 2) for value in (percentile(service, 0.5), service[-1])),
    ]


def count_statements(app: Any, seeded: seed.Seeded) -> dict[str, Any]:
    """SQL statements one flow, one refresh and one bearer read execute (Flask test client)."""
    seed.flow(app, seeded, seeded.sessions[0])  # warm every lazy path once
    steps: dict[str, int] = {}
    with seed.StatementLog(app) as statements:
        seen = [0]

        def mark(step: str) -> None:
            steps[step] = len(statements.statements) - seen[0]
            seen[0] = len(statements.statements)

        tokens = seed.flow(app, seeded, seeded.sessions[0], mark)
    flow_statements = list(statements.statements)
    flow_commits = statements.commits
    other: dict[str, Any] = {}
    client = app.test_client()
    with seed.StatementLog(app) as statements:
        response = client.post(
            "/api/oauth/token",
            data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
            headers={"Authorization": seeded.authorization},
        )
        assert response.status_code == 200, response.get_json()
    other["refresh"] = {"total": len(statements.statements), "commits": statements.commits}
    other["refresh_statements"] = statements.statements
    # The thread list twice: a page read from the database, then the same page the worker kept
    # (app.forum.pages), which is what the bearer_threads phase serves: nothing writes during it.
    for name, path in (
        ("bearer_self", "/api/accounts/self"),
        ("bearer_threads", "/api/threads"),
        ("bearer_threads_kept", "/api/threads"),
    ):
        with seed.StatementLog(app) as statements:
            response = client.get(path, headers=_bearer(tokens["access_token"]))
            assert response.status_code == 200, response.get_json()
        other[name] = {"total": len(statements.statements), "commits": statements.commits}
    return {
        "flow": {**steps, "total": len(flow_statements), "commits": flow_commits},
        "flow_statements": flow_statements,
        **other,
    }


def _ratio(value: float, floor: float) -> float | None:
    return value / floor if floor else None


def analyse(run: Run) -> dict[str, Any]:
    """Ratios to the floor and the issue's targets."""
    by_name = {result["name"]: result for result in run.results}
    floors = [by_name[n] for n in ("floor", "floor_end") if n in by_name]
    floor = {
        key: sum(f[key] for f in floors) / len(floors)
        for key in ("requests_per_second", "service_p50_ms", "service_p99_ms", "server_cpu_ms")
    }
    for result in run.results:
        # Throughput phases compare with the floor slices interleaved with them; the others
        # with the floor measured at the start and the end.
        reference = result.get("paired_floor") or {
            "throughput": floor["requests_per_second"],
            **{key: floor[key] for key in ("service_p50_ms", "service_p99_ms", "server_cpu_ms")},
        }
        result["vs_floor"] = {
            "throughput": _ratio(result["throughput"], reference["throughput"]),
            "requests_per_second": _ratio(result["requests_per_second"], reference["throughput"]),
            "p50": _ratio(result["service_p50_ms"], reference["service_p50_ms"]),
            "p99": _ratio(result["service_p99_ms"], reference["service_p99_ms"]),
            "server_cpu": _ratio(result["server_cpu_ms"], reference["server_cpu_ms"]),
        }
    targets: list[dict[str, Any]] = []

    def target(name: str, value: float | None, limit: float, higher_is_better: bool) -> None:
        if value is None:
            return
        met = value >= limit if higher_is_better else value <= limit
        sign = ">=" if higher_is_better else "<="
        targets.append({"target": name, "value": round(value, 3), "limit": f"{sign} {limit}"})
        targets[-1]["met"] = met

    if run.sql:
        target("SQL statements per full flow", run.sql["flow"]["total"], 15, False)
    for name in ("bearer_self", "bearer_threads"):
        if name in by_name:
            value = by_name[name]["vs_floor"]["throughput"]
            target(f"{name} throughput / floor", value, TARGETS["bearer_share"], True)
    if "refresh" in by_name:
        value = by_name["refresh"]["vs_floor"]["throughput"]
        target("refresh throughput / floor", value, TARGETS["refresh_share"], True)
    if "validation_small" in by_name and "validation_large" in by_name:
        small, large = by_name["validation_small"], by_name["validation_large"]
        sizes = f"{large.get('live_tokens')} / {small.get('live_tokens')} live tokens"
        for key in ("service_p50_ms", "service_p99_ms", "server_cpu_ms"):
            value = _ratio(large[key], small[key])
            label = f"validation {key.removesuffix('_ms').replace('_', ' ')}, {sizes}"
            target(label, value, TARGETS["validation_growth"], False)
    if "cleanup_idle" in by_name and "cleanup_during" in by_name:
        idle, during = by_name["cleanup_idle"], by_name["cleanup_during"]
        value = _ratio(during["service_p99_ms"], idle["service_p99_ms"])
        target("bearer p99 during cleanup / idle", value, TARGETS["cleanup_p99_growth"], False)
        value = _ratio(during["p99_ms"], idle["p99_ms"])
        label = "bearer p99 during cleanup / idle, from the schedule"
        target(label, value, TARGETS["cleanup_p99_growth"], False)
    return {"floor": floor, "targets": targets}


def markdown(run: Run, analysis: dict[str, Any]) -> str:
    """The results table for bench/README.md."""
    lines = [
        "| phase | what | throughput /s | floor /s | x floor | p50 ms | x floor | p99 ms "
        "| x floor | server CPU ms/op | x floor | PostgreSQL CPU ms/op | errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def fmt(value: float | None, digits: int = 2) -> str:
        return "—" if value is None else f"{value:.{digits}f}"

    for r in run.results:
        ratios = r["vs_floor"]
        what = r["note"]
        if r["paced"]:
            what += (
                f" (paced {r['throughput']:.0f}/s; from the schedule p50 {r['p50_ms']:.1f}, "
                f"p99 {r['p99_ms']:.1f} ms)"
            )
        paired = r.get("paired_floor")
        db_cpu = f"{r['database_cpu_ms']:.3f}" if run.postmaster else "—"
        floor_rate = f"{paired['throughput']:.0f}" if paired else "—"
        lines.append(
            f"| {r['name']} | {what} | {r['throughput']:.0f} {r['unit']}s | {floor_rate} "
            f"| {fmt(None if r['paced'] else ratios['throughput'])} "
            f"| {r['service_p50_ms']:.2f} | {fmt(ratios['p50'])} "
            f"| {r['service_p99_ms']:.2f} | {fmt(ratios['p99'])} | {r['server_cpu_ms']:.3f} "
            f"| {fmt(ratios['server_cpu'])} | {db_cpu} | {r['errors']} |"
        )
    if run.sql:
        flow = run.sql["flow"]
        lines += [
            "",
            "| SQL statements (in-process) | authorize | consent GET | consent POST | token "
            "| flow total | refresh | bearer self | bearer threads | bearer threads, page kept |",
            "|---|---|---|---|---|---|---|---|---|---|",
            f"| count | {flow['authorize']} | {flow['consent_get']} | {flow['consent_post']} "
            f"| {flow['token']} | {flow['total']} | {run.sql['refresh']['total']} "
            f"| {run.sql['bearer_self']['total']} | {run.sql['bearer_threads']['total']} "
            f"| {run.sql['bearer_threads_kept']['total']} |",
        ]
    cleanup = next((r for r in run.results if r["name"] == "cleanup_during"), None)
    if cleanup is not None:
        lines += [
            "",
            f"`hearth cleanup` deleted {cleanup['cleanup_deleted_tokens']} expired tokens in "
            f"{cleanup['cleanup_seconds']:.1f} s, using {cleanup['cleanup_cpu_seconds']} s of CPU "
            f"(`{cleanup['cleanup_output']}`).",
        ]
    lines += ["", "| target | measured | limit | met |", "|---|---|---|---|"]
    for t in analysis["targets"]:
        lines.append(
            f"| {t['target']} | {t['value']} | {t['limit']} | {'yes' if t['met'] else '**no**'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    options = parse(argv)
    began = time.monotonic()
    run = Run(options)
    info = machine()
    log(f"workdir {run.workdir}; {info['usable_cpus']} CPUs ({info['cpu_model']})")
    try:
        with run.floor():
            if set(options.scenarios) & {"sql", "bearer", "refresh", "flow"}:
                run.main_scenarios()
            if set(options.scenarios) & {"validation", "cleanup"}:
                run.large_scenarios()
    finally:
        run.close()
    analysis = analyse(run)
    info["loadavg_end"] = Path("/proc/loadavg").read_text().split()[:3]
    info["versions"] = run.versions
    report = {
        "command": " ".join(["python -m bench.run", *(argv if argv is not None else sys.argv[1:])]),
        "database": "postgresql" if options.postgres_url else "sqlite",
        "machine": info,
        "servers": run.commands,
        "options": {
            key: str(value) if isinstance(value, Path) else value
            for key, value in vars(options).items()
            if key != "postgres_url"
        },
        "seconds": round(time.monotonic() - began, 1),
        "floor": analysis["floor"],
        "targets": analysis["targets"],
        "sql": run.sql,
        "scenarios": run.results,
    }
    table = markdown(run, analysis)
    print(table)
    if options.json_path is not None:
        options.json_path.write_text(json.dumps(report, indent=2))
    errors = sum(result["errors"] for result in run.results)
    log(f"done in {report['seconds']} s; {errors} errors")
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
