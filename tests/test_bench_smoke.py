"""`python -m bench.run --smoke` completes every scenario against real gunicorn servers, error-free."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
PHASES = {
    "floor",
    "floor_end",
    "api_alive",
    "bearer_self",
    "bearer_threads",
    "refresh",
    "flow",
    "validation_small",
    "validation_large",
    "cleanup_idle",
    "cleanup_during",
}


def run_bench(module: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    """Run `python -m MODULE ARGUMENTS` from the project root to a zero exit; its output."""
    # The benchmark sets its own production environment; drop what the test session exported.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEARTH_", "BENCH_"))}
    result = subprocess.run(
        [sys.executable, "-m", module, *arguments],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _smoke(tmp_path: Path, module: str, *options: str) -> Any:
    """Run `python -m MODULE --smoke` to completion; return the JSON report it wrote."""
    out = tmp_path / "report.json"
    run_bench(module, "--smoke", *options, "--json", str(out))
    return json.loads(out.read_text())


@pytest.mark.live
def test_bench_smoke_runs_every_scenario_without_errors(tmp_path: Path) -> None:
    report = _smoke(tmp_path, "bench.run")
    phases = {phase["name"]: phase for phase in report["scenarios"]}
    assert set(phases) == PHASES
    assert {name: phase["errors"] for name, phase in phases.items()} == dict.fromkeys(PHASES, 0)
    assert all(phase["steps"] > 0 for phase in phases.values())
    assert report["sql"]["flow"]["total"] > 0
    assert report["scenarios"][-1]["name"] == "floor_end"
    cleanup = phases["cleanup_during"]
    assert cleanup["cleanup_exit"] == 0
    assert cleanup["cleanup_deleted_tokens"] == 1000


@pytest.mark.live
def test_cleanup_ab_smoke_compares_each_variant_with_idle_reads(tmp_path: Path) -> None:
    report = _smoke(
        tmp_path,
        "bench.cleanup_ab",
        "--variant",
        "fast=--rest 0 --batch 100",
        "--variant",
        "default=",
    )
    assert report["errors"] == 0
    assert set(report["results"]) == {"idle", "fast", "default"}
    assert report["results"]["fast"]["options"] == ["--rest", "0", "--batch", "100"]
    assert all(row["requests"] > 0 for row in report["results"].values())
    assert report["results"]["idle"]["p99_vs_idle"] == 1.0
    assert {name: len(codes) for name, codes in report["cleanup_exits"].items()} == {
        "fast": 1,
        "default": 1,
    }
