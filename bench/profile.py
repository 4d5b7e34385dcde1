"""Profile one scenario in-process with pyinstrument: `python -m bench.profile SCENARIO`.

Runs the same requests the load generator sends, through Flask's test client, against a fresh
database with the production settings, and prints where the time goes. pyinstrument is not a
dependency of Hearth: `pip install pyinstrument` into the venv first.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
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


def summarise_collapsed(files: list[Path]) -> str:
    """Busy samples of gunicorn workers: own time by component, and time under Hearth calls."""
    own: dict[str, int] = {}
    under: dict[str, int] = {}
    busy = 0
    for file in files:
        for line in file.read_text().splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            frames = stack.split(";")
            # Idle workers wait in select(); only samples doing work are counted.
            if any("select (selectors.py" in f or "wait (" in f for f in frames[-2:]):
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
    lines = [f"{busy} busy samples in {len(files)} files", "own time by component:"]
    for name, count in sorted(own.items(), key=lambda item: -item[1])[:15]:
        lines.append(f"  {100 * count / max(1, busy):5.1f}%  {name}")
    lines.append("time under each Hearth function (inclusive):")
    for name, count in sorted(under.items(), key=lambda item: -item[1])[:20]:
        lines.append(f"  {100 * count / max(1, busy):5.1f}%  {name}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("scenario", nargs="?", choices=SCENARIOS)
    parser.add_argument(
        "--collapsed",
        type=Path,
        nargs="+",
        help="summarise py-spy collapsed stacks (from `bench.run --py-spy DIR`) instead",
    )
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--postgres-url", default=None)
    parser.add_argument("--html", type=Path, help="also write pyinstrument's HTML report here")
    parser.add_argument("--show-all", action="store_true", help="include library frames")
    args = parser.parse_args(argv)
    if args.collapsed:
        print(summarise_collapsed(args.collapsed))
        return 0
    if args.scenario is None:
        parser.error("name a scenario, or give --collapsed FILES")

    from pyinstrument import Profiler

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
            profiler = Profiler(interval=0.0005)
            began = time.perf_counter()
            profiler.start()
            for _ in range(args.iterations):
                once()
            profiler.stop()
            took = time.perf_counter() - began
            print(
                f"{args.scenario}: {args.iterations} iterations, "
                f"{took * 1000 / args.iterations:.3f} ms each (in-process, profiler attached)"
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
