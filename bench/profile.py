"""Profile one scenario in-process with pyinstrument: `python -m bench.profile SCENARIO`.

Runs the same requests the load generator sends, through Flask's test client, against a fresh
database with the production settings, and prints where the time goes. pyinstrument is not a
dependency of Hearth: `pip install pyinstrument` into the venv first. pyinstrument measures wall
time, which on PostgreSQL includes waiting for the server; `--cpu` samples the process's CPU
time instead (a SIGPROF timer, no extra dependency) and reports it like `--collapsed`.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from bench import seed

SCENARIOS = ("bearer_self", "bearer_threads", "refresh", "flow")


def component(frame: Any) -> str:
    """Name the library, C function or Hearth module a frame's own time belongs to."""
    path = frame.file_path or ""
    if path == "<built-in>":
        return f"C: {frame.function}"[:70]
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    for marker in ("/app/", "/bench/"):
        if marker in path:
            return marker.strip("/") + "/" + path.split(marker, 1)[1]
    return "stdlib: " + Path(path).name


def by_component(root: Any) -> dict[str, float]:
    """Self time per component; pyinstrument books a frame's own time on a `[self]` child."""
    totals: dict[str, float] = {}
    stack = [root]
    while stack:
        frame = stack.pop()
        for child in frame.children:
            if child.is_synthetic_leaf:
                name = component(frame)
                totals[name] = totals.get(name, 0.0) + child.time
            else:
                stack.append(child)
    return totals


def library_calls(root: Any, library: str) -> dict[str, float]:
    """Time spent inside `library`, booked on the Hearth line that called into it."""
    totals: dict[str, float] = {}
    stack = [root]
    while stack:
        frame = stack.pop()
        path = frame.file_path or ""
        ours = "/app/" in path
        for child in frame.children:
            child_path = child.file_path or ""
            if ours and f"site-packages/{library}/" in child_path:
                where = f"{path.split('/app/', 1)[1]}:{frame.line_no} {frame.function}"
                name = f"{where} -> {child.function}"
                totals[name] = totals.get(name, 0.0) + child.time
            elif not child.is_synthetic_leaf:
                stack.append(child)
    return totals


def _frame_component(frame: str) -> str:
    """`function (package/module.py:line)` from py-spy, named like `component`."""
    function, _, where = frame.rpartition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    if path.startswith(("app/", "bench/")):
        return path
    if "/" in path and not path.startswith("<"):
        return path.split("/", 1)[0]
    return f"stdlib: {path} {function}"


class CpuSampler:
    """The main thread's stack every `interval` seconds of this process's CPU time (SIGPROF),
    counted in py-spy's collapsed format ("function (module/path.py:line)" frames joined by ";").

    Unlike py-spy's samples of a busy server, these count only time on a CPU: a thread that is
    runnable but waiting for a core (say, for the PostgreSQL backend its query just woke) is not
    sampled, and time inside a C call is booked on the Python line that made it."""

    def __init__(self, interval: float = 0.001) -> None:
        self.interval = interval
        self.stacks: dict[str, int] = {}

    def _sample(self, _signum: int, frame: FrameType | None) -> None:
        names = []
        while frame is not None:
            code = frame.f_code
            where = f"{_module_path(code.co_filename)}:{frame.f_lineno}"
            names.append(f"{code.co_qualname} ({where})")
            frame = frame.f_back
        key = ";".join(reversed(names))
        self.stacks[key] = self.stacks.get(key, 0) + 1

    def start(self) -> None:
        signal.signal(signal.SIGPROF, self._sample)
        signal.setitimer(signal.ITIMER_PROF, self.interval, self.interval)

    def stop(self) -> None:
        signal.setitimer(signal.ITIMER_PROF, 0, 0)
        signal.signal(signal.SIGPROF, signal.SIG_DFL)

    def lines(self) -> list[str]:
        return [f"{stack} {count}" for stack, count in self.stacks.items()]


def _module_path(filename: str) -> str:
    """A file named as py-spy names it: from the package down, or the bare module."""
    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1]
    for marker in ("/app/", "/bench/"):
        if marker in filename:
            return marker.strip("/") + "/" + filename.split(marker, 1)[1]
    return Path(filename).name


def summarise_collapsed(files: list[Path]) -> str:
    """Busy samples of gunicorn workers: own time by component, and time under Hearth calls."""
    lines = [line for file in files for line in file.read_text().splitlines()]
    return summarise_stacks(lines, f"in {len(files)} files", skip_waits=True)


def summarise_stacks(
    stack_lines: list[str], source: str, skip_waits: bool, within: str | None = None
) -> str:
    """Own samples by component and samples under each Hearth function, from collapsed stacks.

    `skip_waits` drops samples whose last frames wait in select() or a driver's wait loop: in
    py-spy's samples of a worker those are mostly a worker with nothing to do. `within` keeps
    only the samples with a frame containing it (the app's, not the test client's)."""
    own: dict[str, int] = {}
    under: dict[str, int] = {}
    busy = 0
    for line in stack_lines:
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = stack.split(";")
        if within is not None and not any(within in frame for frame in frames):
            continue
        if skip_waits and any("select (selectors.py" in f or "wait (" in f for f in frames[-2:]):
            continue
        count = int(count_text)
        busy += count
        leaf = _frame_component(frames[-1])
        own[leaf] = own.get(leaf, 0) + count
        seen = set()
        for frame in frames:
            if " (app/" in frame:
                function, _, where = frame.rpartition(" (")
                name = f"{function} ({where.rstrip(')').rsplit(':', 1)[0]})"
                if name not in seen:
                    seen.add(name)
                    under[name] = under.get(name, 0) + count
    lines = [f"{busy} busy samples {source}", "own time by component:"]
    for name, count in sorted(own.items(), key=lambda item: -item[1])[:15]:
        lines.append(f"  {100 * count / max(1, busy):5.1f}%  {name}")
    lines.append("time under each Hearth function (inclusive):")
    for name, count in sorted(under.items(), key=lambda item: -item[1])[:20]:
        lines.append(f"  {100 * count / max(1, busy):5.1f}%  {name}")
    return "\n".join(lines)


def _timed(
    once: Callable[[], None],
    iterations: int,
    start: Callable[[], Any],
    stop: Callable[[], Any],
    clock: Callable[[], float],
) -> float:
    """Milliseconds of `clock` per call of `once`, run `iterations` times between start and stop."""
    began = clock()
    start()
    for _ in range(iterations):
        once()
    stop()
    return (clock() - began) * 1000 / iterations


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("scenario", nargs="?", choices=SCENARIOS)
    parser.add_argument(
        "--collapsed",
        type=Path,
        nargs="+",
        help="summarise py-spy collapsed stacks (from `bench.run --py-spy DIR`) instead",
    )
    parser.add_argument(
        "--iterations",
        type=int,
        help="300 by default; 3,000 with --cpu (the kernel samples at its tick)",
    )
    parser.add_argument("--postgres-url", default=None)
    parser.add_argument("--html", type=Path, help="also write pyinstrument's HTML report here")
    parser.add_argument("--show-all", action="store_true", help="include library frames")
    parser.add_argument(
        "--cpu",
        action="store_true",
        help="sample CPU time (SIGPROF) instead of pyinstrument's wall time",
    )
    args = parser.parse_args(argv)
    if args.iterations is None:
        args.iterations = 3000 if args.cpu else 300
    if args.collapsed:
        print(summarise_collapsed(args.collapsed))
        return 0
    if args.scenario is None:
        parser.error("name a scenario, or give --collapsed FILES")

    workdir = Path(tempfile.mkdtemp(prefix="hearth-profile-"))
    (workdir / "instance").mkdir()
    settings = seed.Settings(workdir, "http://127.0.0.1:8000", "http://127.0.0.1:3000")
    database = seed.fresh_database(workdir, args.postgres_url, "profile")
    try:
        with seed.in_process_app(settings, database.url) as app:
            seeded = seed.seed(app, accounts=2)
            tokens = seed.flow(app, seeded, seeded.sessions[0])
            client = app.test_client()
            bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
            state: dict[str, Any] = {"refresh": tokens["refresh_token"]}

            def once() -> None:
                if args.scenario == "flow":
                    seed.flow(app, seeded, seeded.sessions[1])
                elif args.scenario == "refresh":
                    response = client.post(
                        "/api/oauth/token",
                        data={"grant_type": "refresh_token", "refresh_token": state["refresh"]},
                        headers={"Authorization": seeded.authorization},
                    )
                    assert response.status_code == 200, response.get_json()
                    state["refresh"] = response.get_json()["refresh_token"]
                else:
                    path = (
                        "/api/accounts/self" if args.scenario == "bearer_self" else "/api/threads"
                    )
                    response = client.get(path, headers=bearer)
                    assert response.status_code == 200, response.get_json()

            for _ in range(20):
                once()
            if args.cpu:
                sampler = CpuSampler()
                each = _timed(once, args.iterations, sampler.start, sampler.stop, time.process_time)
                print(
                    f"{args.scenario}: {args.iterations} iterations, "
                    f"{each:.3f} ms of CPU each (in-process, sampled)"
                )
                # Only inside the app: Werkzeug's test client costs as much again around it.
                app_only = "wsgi_app (flask/app.py"
                print(summarise_stacks(sampler.lines(), "of CPU time in the app", False, app_only))
                return 0
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.0005)
            each = _timed(once, args.iterations, profiler.start, profiler.stop, time.perf_counter)
            print(
                f"{args.scenario}: {args.iterations} iterations, "
                f"{each:.3f} ms each (in-process, profiler attached)"
            )
            print(profiler.output_text(unicode=True, color=False, show_all=args.show_all))
            session = profiler.last_session
            assert session is not None
            root = session.root_frame(trim_stem=False)
            if root is not None:
                print("self time by component (ms per iteration):")
                shares = by_component(root)
                for name, seconds in sorted(shares.items(), key=lambda item: -item[1])[:15]:
                    print(f"  {seconds * 1000 / args.iterations:8.3f}  {name}")
                for library in ("sqlalchemy", "joserfc", "authlib"):
                    calls = library_calls(root, library)
                    print(f"time in {library} by the Hearth line calling it (ms per iteration):")
                    for name, seconds in sorted(calls.items(), key=lambda item: -item[1])[:12]:
                        print(f"  {seconds * 1000 / args.iterations:8.3f}  {name}")
            if args.html is not None:
                args.html.write_text(profiler.output_html())
    finally:
        database.drop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
