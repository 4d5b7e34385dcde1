"""`python -m bench.profile --cpu`: CPU-time samples, summarised like py-spy's collapsed stacks."""

from __future__ import annotations

import time

import pytest

from bench.profile import CpuSampler, summarise_stacks
from tests.test_bench_smoke import run_bench

STACKS = [
    "run (gunicorn/arbiter.py:10);token (app/oauth/views.py:270);first (app/direct.py:150) 6",
    "run (gunicorn/arbiter.py:10);token (app/oauth/views.py:271);get (werkzeug/utils.py:5) 3",
    "run (gunicorn/arbiter.py:10);wait (psycopg/connection.py:495) 1",
    "not a sample line",
]


def test_summary_books_own_samples_by_component_and_inclusive_ones_by_hearth_function() -> None:
    summary = summarise_stacks(STACKS, "of CPU time", skip_waits=False).splitlines()
    assert summary[0] == "10 busy samples of CPU time"
    own = summary[
        summary.index("own time by component:") + 1 : summary.index(
            "time under each Hearth function (inclusive):"
        )
    ]
    assert own == ["   60.0%  app/direct.py", "   30.0%  werkzeug", "   10.0%  psycopg"]
    under = summary[summary.index("time under each Hearth function (inclusive):") + 1 :]
    # Both lines of `token` count as one function; each sample counts once under it.
    assert under == ["   90.0%  token (app/oauth/views.py)", "   60.0%  first (app/direct.py)"]


def test_summary_of_a_servers_samples_drops_the_ones_waiting() -> None:
    summary = summarise_stacks(STACKS, "in 1 files", skip_waits=True).splitlines()
    assert summary[0] == "9 busy samples in 1 files"
    assert "psycopg" not in "\n".join(summary)


def test_summary_within_a_frame_keeps_only_the_samples_under_it() -> None:
    summary = summarise_stacks(STACKS, "in the app", False, "views.py:271").splitlines()
    assert summary[0] == "3 busy samples in the app"
    assert summary[2] == "  100.0%  werkzeug"


def _spin(seconds: float) -> int:
    spent, total = time.process_time(), 0
    while time.process_time() - spent < seconds:
        total += sum(range(200))
    return total


def test_cpu_sampler_records_the_stack_that_uses_the_cpu_and_not_one_that_sleeps() -> None:
    sampler = CpuSampler(interval=0.001)  # the kernel delivers at its tick: ~4 ms here
    sampler.start()
    try:
        spent = time.process_time()
        while sum(sampler.stacks.values()) < 40 and time.process_time() - spent < 10:
            _spin(0.01)
        busy = sum(sampler.stacks.values())
        time.sleep(0.3)
        asleep = sum(sampler.stacks.values()) - busy
    finally:
        sampler.stop()
    assert busy >= 40
    # A wall-clock sampler would have taken dozens of samples in the 0.3 s asleep.
    assert asleep <= 2
    lines = sampler.lines()
    spinning = sum(int(line.rpartition(" ")[2]) for line in lines if "_spin (" in line)
    assert spinning >= 0.9 * busy
    assert all(line.split(";")[-1].count(" (") == 1 for line in lines)


@pytest.mark.live
def test_bench_profile_cpu_prints_cpu_per_iteration_and_the_summary() -> None:
    # The kernel samples CPU time at its tick (~4 ms here): 30 iterations gave two or three
    # samples and sometimes none under get_self. 400 give ~60, over half of them under it.
    result = run_bench("bench.profile", "bearer_self", "--cpu", "--iterations", "400")
    lines = result.stdout.splitlines()
    assert lines[0].startswith("bearer_self: 400 iterations, ")
    assert lines[0].endswith(" ms of CPU each (in-process, sampled)")
    assert lines[1].endswith(" busy samples of CPU time in the app")
    assert "own time by component:" in lines
    assert any("get_self (app/accounts/views.py)" in line for line in lines)
