"""Interleaved comparison of `hearth cleanup` settings: `python -m bench.cleanup_ab`.

One API server, one paced bearer-read load (the `cleanup` scenario's: GET /api/accounts/self,
100 requests/s over 4 connections) for the whole run, and in turn: an idle segment, then a
segment with `hearth cleanup VARIANT-OPTIONS` running next to the API (stopped with SIGTERM at the
segment's end; its open batch rolls back). Variants alternate in order and reverse order each
round, so a machine that drifts (neighbours, CPU frequency) weighs on all of them alike: separate
full runs on this machine move the idle p99 by ±50 %, which hides the difference being measured.

    python -m bench.cleanup_ab --variant "rest1=--rest 1" --variant "rest3=--rest 3"

Prints, per variant and for the idle segments, the service latency p50/p99/p99.9 and the p99's
ratio to the idle p99 (the issue-6 target: at most 2x). The first 2 s of a segment are not counted
(the cleanup's interpreter start-up, or the previous cleanup's end).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import seed
from bench.load import Load, Plan
from bench.run import percentile
from bench.servers import ROOT, Gunicorn, free_port

SETTLE = 2.0  # seconds at a segment's start that are not counted


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=OPTIONS",
        help="a name and the options `hearth cleanup` runs with (repeatable; "
        'default: "rest1=--rest 1" and "default=")',
    )
    parser.add_argument("--segment", type=float, default=12.0, help="seconds per segment")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=100.0, help="paced reads per second")
    parser.add_argument("--live", type=int, default=1_000_000, help="live tokens stored")
    parser.add_argument("--expired", type=int, default=1_000_000, help="expired tokens stored")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("BENCH_POSTGRES_URL") or None,
        help="admin URL of a PostgreSQL server (default: $BENCH_POSTGRES_URL; else SQLite)",
    )
    parser.add_argument("--smoke", action="store_true", help="tiny tables, 2 s segments, 1 round")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    if not args.variant:
        args.variant = ["rest1=--rest 1", "default="]
    if args.smoke:
        args.segment, args.rounds, args.live, args.expired = 3.0, 1, 1000, 2000
    return args


def variants(specs: list[str]) -> dict[str, list[str]]:
    parsed: dict[str, list[str]] = {}
    for spec in specs:
        name, separator, options = spec.partition("=")
        if not separator or not name or name == "idle" or name in parsed:
            raise SystemExit(f"--variant {spec!r}: want a new NAME=OPTIONS (not 'idle')")
        parsed[name] = shlex.split(options)
    return parsed


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    chosen = variants(args.variant)
    workdir = Path(tempfile.mkdtemp(prefix="hearth-cleanup-ab-"))
    port = free_port()
    settings = seed.Settings(workdir, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{free_port()}")
    database = seed.fresh_database(workdir, args.postgres_url, "cleanup_ab")
    connections = 4
    try:
        with seed.in_process_app(settings, database.url) as app:
            seeded = seed.seed(app, accounts=connections, threads=5, replies=1)
            engine = seed.engine_of(app)
            audience = f"{settings.api_address}/api"
            seed.bulk_tokens(engine, seeded, audience, args.live, expired=False)
            seed.bulk_tokens(engine, seeded, audience, args.expired, expired=True)
            tokens = seed.mint(app, seeded, connections)
        states = seed.self_readers(tokens)
        env = settings.environ(database.url)
        command = [sys.executable, "-c", "from app.cli import main; main()", "cleanup"]
        server = Gunicorn("wsgi:api", port, env, 2, workdir / "gunicorn.log", "/health/ready")
        server.start()
        segments: list[tuple[str, float, float]] = []
        exits: dict[str, list[int]] = {name: [] for name in chosen}
        try:
            rate = args.rate / connections
            load = Load(Plan("get", port, states, 3.0, 3600.0, rate, open_ended=True))
            load.start()
            time.sleep(3.0)
            order = list(chosen)
            for round_ in range(args.rounds):
                for name in order if round_ % 2 == 0 else order[::-1]:
                    began = time.monotonic()
                    time.sleep(args.segment)
                    segments.append(("idle", began + SETTLE, time.monotonic()))
                    process = subprocess.Popen(
                        [*command, *chosen[name]],
                        cwd=ROOT,
                        env=env,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                    began = time.monotonic()
                    time.sleep(args.segment)
                    segments.append((name, began + SETTLE, time.monotonic()))
                    process.send_signal(signal.SIGTERM)
                    exits[name].append(process.wait(timeout=60))
            load.stop()
            samples = load.join()
        finally:
            server.stop()
    finally:
        database.drop()
        shutil.rmtree(workdir, ignore_errors=True)
    latencies: dict[str, list[float]] = {"idle": [], **{name: [] for name in chosen}}
    errors = sum(s.errors for s in samples)
    for connection in samples:
        for ended, service in zip(connection.ends, connection.service, strict=True):
            for kind, start, end in segments:
                if start <= ended < end:
                    latencies[kind].append(service * 1000)
                    break
    results: dict[str, Any] = {}
    for kind, values in latencies.items():
        values.sort()
        results[kind] = {
            "options": chosen.get(kind, []),
            "requests": len(values),
            "p50_ms": percentile(values, 0.50),
            "p99_ms": percentile(values, 0.99),
            "p999_ms": percentile(values, 0.999),
        }
    idle_p99 = results["idle"]["p99_ms"]
    print(
        f"{'segment':12s} {'reads':>6s} {'p50 ms':>7s} {'p99 ms':>7s} {'p99.9':>7s} {'p99/idle':>8s}"
    )
    for kind, row in results.items():
        row["p99_vs_idle"] = row["p99_ms"] / idle_p99 if idle_p99 else 0.0
        print(
            f"{kind:12s} {row['requests']:6d} {row['p50_ms']:7.2f} {row['p99_ms']:7.2f} "
            f"{row['p999_ms']:7.2f} {row['p99_vs_idle']:7.2f}x  {shlex.join(row['options'])}"
        )
    report = {
        "command": shlex.join([sys.executable, "-m", "bench.cleanup_ab", *(argv or sys.argv[1:])]),
        "database": "postgresql" if args.postgres_url else "sqlite",
        "segment_seconds": args.segment,
        "rounds": args.rounds,
        "live_tokens": args.live,
        "expired_tokens": args.expired,
        "errors": errors,
        "cleanup_exits": exits,
        "results": results,
    }
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    # SIGTERM ends a cleanup that is still busy (-15); a cleanup that finished exits 0.
    failed = any(code not in (0, -signal.SIGTERM) for codes in exits.values() for code in codes)
    return 1 if errors or failed else 0


if __name__ == "__main__":
    sys.exit(main())
