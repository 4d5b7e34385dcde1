"""Load generator: one process per connection, each a keep-alive `http.client.HTTPConnection`.

A *step* is what a scenario repeats: one request (a bearer read, a refresh grant) or four (the
authorization-code flow). Every connection keeps its own state, so a refresh chain always presents
the refresh token its previous response returned. Load is bounded by a deadline and, for open-ended
phases, by a stop event; only 127.0.0.1 is ever contacted.

Two ways to pace:
- closed loop (`rate=None`): each connection sends its next step as soon as the last one ended;
  this measures throughput.
- paced (`rate` steps/s per connection): each step has a scheduled start; latency is measured from
  that schedule, so a stall also counts against the steps that could not start during it (no
  coordinated omission). This measures latency below saturation.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import multiprocessing as mp
import queue
import resource
import secrets
import time
from array import array
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

HOST = "127.0.0.1"
ERROR_SAMPLES = 5


class StepError(Exception):
    """A step got an unexpected answer; the message says which request and what came back."""


@dataclass(frozen=True)
class Plan:
    """What every connection of one load phase does, and when."""

    scenario: str  # "get", "refresh" or "flow"
    port: int
    states: list[dict[str, Any]]  # one per connection
    warmup: float
    duration: float  # measured seconds after warm-up; the hard limit when open-ended
    rate: float | None = None  # steps/s per connection; None: closed loop
    open_ended: bool = False  # run until `stop` (or the hard limit)


@dataclass
class Samples:
    """Everything one connection observed after its warm-up."""

    steps: int = 0
    requests: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    ends: array[float] = field(default_factory=lambda: array("d"))
    latencies: array[float] = field(default_factory=lambda: array("d"))
    service: array[float] = field(default_factory=lambda: array("d"))
    late: int = 0
    state: dict[str, Any] = field(default_factory=dict)  # to continue in the next slice
    cpu_seconds: float = 0.0
    measured_from: float = 0.0
    measured_to: float = 0.0


def _call(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes | None = None,
) -> tuple[int, http.client.HTTPMessage, bytes]:
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
    except (OSError, http.client.HTTPException) as error:
        conn.close()
        raise StepError(f"{method} {path.split('?')[0]}: {type(error).__name__}: {error}") from None
    return response.status, response.headers, data


def _expect(status: int, wanted: int, method: str, path: str, data: bytes) -> None:
    if status != wanted:
        snippet = data[:200].decode(errors="replace")
        raise StepError(
            f"{method} {path.split('?')[0]}: status {status} (wanted {wanted}) {snippet}"
        )


def basic_auth(client_id: str, secret: str) -> str:
    raw = f"{client_id}:{secret}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def pkce_pair() -> tuple[str, str]:
    """RFC 7636 §4.1-4.2: a fresh verifier and its S256 challenge."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class Driver:
    """One connection's scenario: `step` performs one unit of work or raises StepError."""

    requests_per_step = 1

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state

    def step(self, conn: http.client.HTTPConnection) -> None:
        raise NotImplementedError

    def export(self) -> dict[str, Any]:
        """The state a later phase needs to carry on where this one stopped."""
        return self.state


class GetDriver(Driver):
    """A GET with fixed headers (bearer reads, the floor)."""

    def __init__(self, state: dict[str, Any]) -> None:
        super().__init__(state)
        self.path: str = state["path"]
        self.headers: dict[str, str] = dict(state.get("headers", {}))

    def step(self, conn: http.client.HTTPConnection) -> None:
        status, _headers, data = _call(conn, "GET", self.path, self.headers)
        _expect(status, 200, "GET", self.path, data)


class RefreshDriver(Driver):
    """RFC 6749 §6 refresh grant, presenting the token the previous response rotated in."""

    path = "/api/oauth/token"

    def __init__(self, state: dict[str, Any]) -> None:
        super().__init__(state)
        self.refresh_token: str = state["refresh_token"]
        self.headers = {
            "Authorization": state["authorization"],
            "Content-Type": "application/x-www-form-urlencoded",
        }

    def step(self, conn: http.client.HTTPConnection) -> None:
        body = urlencode({"grant_type": "refresh_token", "refresh_token": self.refresh_token})
        status, _headers, data = _call(conn, "POST", self.path, self.headers, body.encode())
        _expect(status, 200, "POST", self.path, data)
        token = json.loads(data)
        if "refresh_token" not in token or "access_token" not in token:
            raise StepError(f"POST {self.path}: no rotated refresh token in {sorted(token)}")
        self.refresh_token = token["refresh_token"]

    def export(self) -> dict[str, Any]:
        return {**self.state, "refresh_token": self.refresh_token}


class FlowDriver(Driver):
    """Authorization code + PKCE with the browser session kept: four requests per step."""

    requests_per_step = 4

    def __init__(self, state: dict[str, Any]) -> None:
        super().__init__(state)
        self.cookie = {"Cookie": f"storyden-session={state['session']}"}
        self.client_id: str = state["client_id"]
        self.redirect_uri: str = state["redirect_uri"]
        self.scope: str = state["scope"]
        self.token_headers = {
            "Authorization": state["authorization"],
            "Content-Type": "application/x-www-form-urlencoded",
        }

    def step(self, conn: http.client.HTTPConnection) -> None:
        verifier, challenge = pkce_pair()
        state = secrets.token_urlsafe(8)
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.client_id,
                "redirect_uri": self.redirect_uri,
                "scope": self.scope,
                "state": state,
                "nonce": secrets.token_urlsafe(8),
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )
        path = f"/api/oauth/authorize?{query}"
        status, headers, data = _call(conn, "GET", path, self.cookie)
        _expect(status, 302, "GET", path, data)
        location = headers.get("Location", "")
        request_ids = parse_qs(urlsplit(location).query).get("request_id")
        if not request_ids:
            raise StepError(f"GET /api/oauth/authorize: no request_id in {location[:120]}")
        request_id = request_ids[0]

        path = "/api/oauth/authorize/consent?" + urlencode({"request_id": request_id})
        status, _headers, data = _call(conn, "GET", path, self.cookie)
        _expect(status, 200, "GET", path, data)

        path = "/api/oauth/authorize/consent"
        body = json.dumps({"request_id": request_id, "decision": "approve"}).encode()
        headers_json = {**self.cookie, "Content-Type": "application/json"}
        status, _headers, data = _call(conn, "POST", path, headers_json, body)
        _expect(status, 200, "POST", path, data)
        params = parse_qs(urlsplit(json.loads(data)["location"]).query)
        if params.get("state") != [state] or "code" not in params:
            raise StepError(f"POST {path}: no code for our state in the location")

        path = "/api/oauth/token"
        form = urlencode(
            {
                "grant_type": "authorization_code",
                "code": params["code"][0],
                "redirect_uri": self.redirect_uri,
                "code_verifier": verifier,
            }
        )
        status, _headers, data = _call(conn, "POST", path, self.token_headers, form.encode())
        _expect(status, 200, "POST", path, data)
        if "access_token" not in json.loads(data):
            raise StepError(f"POST {path}: no access_token")


DRIVERS: dict[str, type[Driver]] = {
    "get": GetDriver,
    "refresh": RefreshDriver,
    "flow": FlowDriver,
}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _connection(
    index: int,
    plan: Plan,
    ready: Any,
    go: Any,
    start: Any,
    stop: Any,
    results: Any,
) -> None:
    """Body of one load process: wait for the common start, warm up, then record."""
    driver = DRIVERS[plan.scenario](plan.states[index])
    conn = http.client.HTTPConnection(HOST, plan.port, timeout=60)
    samples = Samples()
    ready.put(index)
    go.wait(timeout=120)
    t0 = start.value
    measure_from = t0 + plan.warmup
    deadline = measure_from + plan.duration
    interval = 1.0 / plan.rate if plan.rate else 0.0
    # Spread the connections' schedules evenly over one interval.
    scheduled = measure_from + interval * index / max(1, len(plan.states))
    while time.monotonic() < t0:
        time.sleep(0.001)
    measuring = False
    cpu_from = 0.0
    dead = False
    while not dead:
        now = time.monotonic()
        if now >= deadline or (plan.open_ended and stop.is_set()):
            break
        if not measuring and now >= measure_from:
            measuring, cpu_from = True, _cpu()
        planned = now
        if measuring and interval:
            if scheduled > now:
                time.sleep(scheduled - now)
            elif now - scheduled > interval:
                samples.late += 1
            planned = scheduled
            scheduled += interval
        began = time.monotonic()
        try:
            driver.step(conn)
            ok = True
        except Exception as error:  # any failure is an error of this step, never a crash
            ok = False
            samples.errors += 1
            if len(samples.error_samples) < ERROR_SAMPLES:
                text = str(error) if isinstance(error, StepError) else repr(error)
                samples.error_samples.append(text[:300])
            # A broken refresh chain cannot continue: its token may be rotated already.
            dead = plan.scenario == "refresh"
        ended = time.monotonic()
        if measuring and ok:
            samples.steps += 1
            samples.requests += driver.requests_per_step
            samples.ends.append(ended)
            samples.latencies.append(ended - planned)
            samples.service.append(ended - began)
    conn.close()
    samples.state = driver.export()
    samples.measured_from = measure_from
    samples.measured_to = time.monotonic()
    samples.cpu_seconds = _cpu() - cpu_from if measuring else 0.0
    results.put((index, samples))


class Load:
    """A running load phase: `start()`, optionally `stop()`, then `join()` for the samples."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        # fork: the children start at once, without re-importing the orchestrator (spawn and
        # forkserver both re-run `__main__`, i.e. import Flask, SQLAlchemy and the app). The
        # orchestrator runs no threads, so forking it is safe.
        context = mp.get_context("fork")
        self._ready: Any = context.Queue()
        self._results: Any = context.Queue()
        self._go = context.Event()
        self._stop = context.Event()
        self._start = context.Value("d", 0.0)
        self._processes = [
            context.Process(
                target=_connection,
                args=(i, plan, self._ready, self._go, self._start, self._stop, self._results),
                daemon=True,
            )
            for i in range(len(plan.states))
        ]
        self.t0 = 0.0

    @property
    def measure_from(self) -> float:
        return self.t0 + self.plan.warmup

    @property
    def measure_to(self) -> float:
        return self.measure_from + self.plan.duration

    def start(self) -> None:
        for process in self._processes:
            process.start()
        for _ in self._processes:
            self._ready.get(timeout=60)
        self.t0 = time.monotonic() + 0.05
        self._start.value = self.t0
        self._go.set()

    def stop(self) -> None:
        self._stop.set()

    def join(self) -> list[Samples]:
        """Collect every connection's samples; a connection that died reports one error."""
        limit = self.measure_to + 120
        collected: dict[int, Samples] = {}
        while len(collected) < len(self._processes) and time.monotonic() < limit:
            try:
                index, samples = self._results.get(timeout=1.0)
            except queue.Empty:
                if not any(p.is_alive() for p in self._processes):
                    break
                continue
            collected[index] = samples
        for index, process in enumerate(self._processes):
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
            if index not in collected:
                lost = Samples(errors=1, state=self.plan.states[index])
                lost.error_samples.append(f"connection {index} died (exit {process.exitcode})")
                collected[index] = lost
        return [collected[i] for i in sorted(collected)]


def run(plan: Plan) -> tuple[Load, list[Samples]]:
    """Run a closed phase (not open-ended) from start to end."""
    load = Load(plan)
    load.start()
    return load, load.join()
