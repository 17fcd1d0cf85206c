"""One function instance: its state machine and the runner that is the only writer of that state.

    STARTING ──ready──▶ READY ◀──release── BUSY
        │                 │ ╲───acquire──▶ ╱ │
        │ start failed    │ idle/update      │ timeout, crash, update
        ▼                 ▼                  ▼
     STOPPED ◀──────── DRAINING ◀────────────┘

FROZEN (light hibernation) joins READY ⇄ FROZEN; a frozen instance is thawed before it is drained.
Transitions outside ``TRANSITIONS`` are bugs and raise.
"""

from __future__ import annotations

import enum
import json
import socket
import threading
import time
from dataclasses import dataclass
from typing import Callable

from ..errors import InstanceStartError
from ..wire import PeerClosed, Wire, WireError, request_head
from .driver import ContainerDriver, ContainerInfo, ContainerSpec, DriverError
from .freezer import Freezer, FreezerError

MAX_REPLY = 32 * 1024 * 1024  # FC's limit on a sync invocation's response


class InstanceState(str, enum.Enum):
    STARTING = "starting"
    READY = "ready"
    BUSY = "busy"
    FROZEN = "frozen"
    DRAINING = "draining"
    STOPPED = "stopped"


S = InstanceState
TRANSITIONS: dict[InstanceState, frozenset[InstanceState]] = {
    S.STARTING: frozenset({S.READY, S.DRAINING, S.STOPPED}),
    S.READY: frozenset({S.BUSY, S.FROZEN, S.DRAINING}),
    S.BUSY: frozenset({S.READY, S.DRAINING}),
    S.FROZEN: frozenset({S.READY, S.DRAINING}),
    S.DRAINING: frozenset({S.STOPPED}),
    S.STOPPED: frozenset(),
}


_SERVING = frozenset({S.READY, S.BUSY})


class IllegalTransition(RuntimeError):
    pass


@dataclass(slots=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    lines: list[str] | None = None  # header lines as received, repeats kept (passed through by HTTP triggers)


class InvocationTimeout(Exception):
    pass


@dataclass(frozen=True)
class LifecycleHooks:
    """FC's instance lifecycle hooks: ``initializer`` runs once before the first invocation, ``pre_stop`` before
    the instance is destroyed; each has its own timeout."""

    initializer: str | None = None
    initializer_timeout: float = 3.0
    pre_stop: str | None = None
    pre_stop_timeout: float = 3.0


class InitializerFailed(Exception):
    """The initializer raised or timed out; carries FC's error JSON for the waiting request."""

    def __init__(self, body: bytes) -> None:
        super().__init__(body.decode(errors="replace"))
        self.body = body


class InstanceBroken(Exception):
    """The instance stopped answering (crashed or closed the connection)."""


class Instance:
    """A runner for one container. The pool decides when to acquire and release; the runner owns the state."""

    def __init__(
        self,
        *,
        instance_id: str,
        function: str,
        generation: str,
        concurrency: int,
        port: int,
        driver: ContainerDriver,
        on_state: "callable[[Instance], None]",
        hooks: "LifecycleHooks | None" = None,
    ) -> None:
        self.id = instance_id
        self.function = function
        self.generation = generation
        self.concurrency = concurrency
        self.port = port
        self.in_flight = 0
        self.last_used = time.monotonic()
        self.container: ContainerInfo | None = None
        self._driver = driver
        self._on_state = on_state
        self.hooks = hooks or LifecycleHooks()
        self._state = InstanceState.STARTING
        self._state_since = time.monotonic()
        # Seconds spent per billing state (FC bills active and light-hibernation time differently).
        self.seconds_in: dict[str, float] = {"active": 0.0, "hibernated": 0.0}
        self.freezer: Freezer | None = None
        self.resumes = 0
        self.persisted_state: InstanceState | None = None  # owned by the agent's persistence hook
        self._lock = threading.Lock()
        self._idle_connections: list[Wire] = []  # kept-alive connections to the instance's server

    @property
    def state(self) -> InstanceState:
        return self._state

    def _move(self, new: InstanceState) -> None:
        if new not in TRANSITIONS[self._state]:
            raise IllegalTransition(f"instance {self.id}: {self._state.value} -> {new.value}")
        if new in _SERVING and self._state in _SERVING:
            # READY <-> BUSY, twice per invocation: one billing state (active) and one durable state, so there
            # is nothing to account or persist.
            self._state = new
            return
        now = time.monotonic()
        self.seconds_in["hibernated" if self._state is InstanceState.FROZEN else "active"] += now - self._state_since
        self._state_since = now
        self._state = new
        self._on_state(self)

    def billing_seconds(self) -> dict[str, float]:
        with self._lock:
            current = "hibernated" if self._state is InstanceState.FROZEN else "active"
            if self._state is InstanceState.STOPPED:
                return dict(self.seconds_in)
            return {**self.seconds_in, current: self.seconds_in[current] + time.monotonic() - self._state_since}

    # lifecycle ----------------------------------------------------------------------------------------------
    def adopt(self, container: ContainerInfo) -> None:
        """Take over a container found running after an agent restart; a frozen one stays frozen."""
        self.container = container
        self._attach_freezer()
        self._move(InstanceState.READY)
        if self.freezer is not None and self.freezer.is_frozen():
            self._move(InstanceState.FROZEN)

    def _attach_freezer(self) -> None:
        try:
            self.freezer = Freezer.for_pid(self.container.pid) if self.container and self.container.pid else None
        except FreezerError:
            self.freezer = None  # hibernation unavailable for this instance; it simply stays active

    def start(self, spec: ContainerSpec, timeout: float, *, reserve: bool = False,
              launch: "Callable[[ContainerSpec], tuple[ContainerInfo, bool]] | None" = None) -> None:
        """Starts the container and waits until it answers. With ``reserve``, the first slot goes to the caller in
        the same step that makes the instance visible as ready, so no waiter can take it first. ``launch``: how
        the container comes to be (a stem cell's hand-over, instances/stemcells.py) instead of the engine's start;
        it returns the container and whether its CPU limit is already the instance's own."""
        cpu_final = False
        try:
            if launch is None:
                self.container = self._driver.start(spec)
            else:
                self.container, cpu_final = launch(spec)
        except DriverError as exc:
            self._move(InstanceState.STOPPED)
            raise InstanceStartError(str(exc)) from exc
        try:
            self._wait_ready(timeout)
            self._run_initializer()
            if spec.startup_cpu and spec.startup_cpu != spec.cpu and not cpu_final:
                self._driver.set_cpu(self.container.id, spec.cpu)
        except InitializerFailed:
            self.stop()  # an instance whose initializer failed is discarded
            raise
        except InstanceStartError:
            self.stop()
            raise
        except DriverError as exc:
            self.stop()
            raise InstanceStartError(str(exc)) from exc
        self._attach_freezer()
        with self._lock:
            drained_while_starting = self._state is InstanceState.DRAINING
            if not drained_while_starting:
                self._move(InstanceState.READY)
                if reserve:
                    self.in_flight += 1
                    self._move(InstanceState.BUSY)
        if drained_while_starting:
            self.stop()
            raise InstanceStartError(f"instance {self.id} was retired while it started")

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        delay = 0.002
        next_look = time.monotonic() + 0.2
        while True:
            conn: Wire | None = None
            try:
                conn = self._connect(timeout=1)
                reply = conn.exchange(request_head("GET", "/", self._authority, {}, 0), b"", timeout=1,
                                      limit=MAX_REPLY, method="GET")
                if int(reply.start[1]) < 500:
                    if reply.keep_alive:
                        self._idle_connections.append(conn)
                    else:
                        conn.close()
                    return
                conn.close()
            except (OSError, WireError, ValueError):
                if conn is not None:
                    conn.close()
            if time.monotonic() > deadline:
                raise InstanceStartError(
                    f"instance {self.id} did not answer on port {self.port} within {timeout:.0f}s"
                )
            if time.monotonic() > next_look:  # a process that exited will never answer: say so now
                next_look = time.monotonic() + 0.2
                report = self._driver.exit_report(self.container.id)
                if report is not None:
                    raise InstanceStartError(f"instance {self.id} stopped before it listened on port "
                                             f"{self.port}: its process {report}")
            time.sleep(delay)
            delay = min(delay * 2, 0.01)

    def _run_initializer(self) -> None:
        if not self.hooks.initializer:
            return
        headers = {"x-fc-initializer": self.hooks.initializer, "x-fc-request-id": f"init-{self.id}"}
        try:
            reply = self.call("/initialize", b"", headers, self.hooks.initializer_timeout)
        except InvocationTimeout:
            raise InitializerFailed(json.dumps({
                "errorMessage": f"Initializer timed out after {self.hooks.initializer_timeout:g} seconds",
                "errorType": "InitializerTimeoutError", "stackTrace": []}).encode()) from None
        except InstanceBroken as exc:
            raise InitializerFailed(json.dumps({
                "errorMessage": f"instance exited during the initializer: {exc}",
                "errorType": "InitializerError", "stackTrace": []}).encode()) from None
        if "x-fc-error-type" in reply.headers:
            raise InitializerFailed(reply.body)

    def _run_pre_stop(self) -> None:
        """Best effort: a failing or slow pre_stop never keeps an instance alive."""
        if not self.hooks.pre_stop or self.container is None:
            return
        try:
            self.call("/pre-stop", b"", {"x-fc-pre-stop": self.hooks.pre_stop, "x-fc-request-id": f"stop-{self.id}"},
                      self.hooks.pre_stop_timeout)
        except (InvocationTimeout, InstanceBroken):
            pass

    def try_acquire(self) -> bool:
        """Reserves a slot. A frozen instance is thawed first, under the instance's lock, so concurrent wakers
        of one instance coalesce into one thaw."""
        with self._lock:
            if self._state is InstanceState.FROZEN:
                try:
                    self.freezer.thaw()  # type: ignore[union-attr]
                except FreezerError:
                    return False
                self.resumes += 1
                self._move(InstanceState.READY)
            if self._state not in (InstanceState.READY, InstanceState.BUSY):
                return False
            if self.in_flight >= self.concurrency:
                return False
            self.in_flight += 1
            if self._state is InstanceState.READY:
                self._move(InstanceState.BUSY)
            return True

    def release(self) -> None:
        with self._lock:
            self.in_flight -= 1
            self.last_used = time.monotonic()
            if self.in_flight == 0 and self._state is InstanceState.BUSY:
                self._move(InstanceState.READY)

    def hibernate(self, grace: float) -> bool:
        """Freezes the instance if it has been idle for ``grace`` seconds; never with a request in flight."""
        with self._lock:
            if (self._state is not InstanceState.READY or self.in_flight or self.freezer is None
                    or time.monotonic() - self.last_used < grace):
                return False
            try:
                self.freezer.freeze()
            except FreezerError:
                return False
            self._move(InstanceState.FROZEN)
            return True

    def begin_drain(self, *, only_if_idle: bool = False) -> bool:
        """Stop taking requests. Returns True when the instance is idle and can be stopped now. With
        ``only_if_idle``, an instance that is starting or serving is left alone (and False returned)."""
        with self._lock:
            if self._state in (InstanceState.DRAINING, InstanceState.STOPPED):
                return False
            if only_if_idle and (self.in_flight or self._state not in (InstanceState.READY, InstanceState.FROZEN)):
                return False
            self._thaw_for_stop()
            self._move(InstanceState.DRAINING)
            return self.in_flight == 0

    def stop(self) -> None:
        with self._lock:
            if self._state is InstanceState.STOPPED:
                return
            if self._state is not InstanceState.DRAINING:
                self._thaw_for_stop()
                self._move(InstanceState.DRAINING)
        self._run_pre_stop()
        with self._lock:
            for conn in self._idle_connections:
                conn.close()
            self._idle_connections.clear()
        if self.container is not None:
            try:
                self._driver.destroy(self.container.id)
            except DriverError:
                pass  # reconcile removes it later; the instance is gone for the pool either way
        with self._lock:
            self._move(InstanceState.STOPPED)

    def kill_container(self) -> None:
        """Removes the container now, whatever it is doing (StopAsyncTask of a running task): calls in flight fail
        at once and their release retires the instance. Its state moves through ``stop`` as usual."""
        if self.container is not None:
            self._driver.destroy(self.container.id)

    def _thaw_for_stop(self) -> None:
        """Frozen tasks cannot receive the kill signal: a frozen container is thawed before it is stopped."""
        if self._state is InstanceState.FROZEN and self.freezer is not None:
            try:
                self.freezer.thaw()
            except FreezerError:
                pass

    # invocation ---------------------------------------------------------------------------------------------
    @property
    def _authority(self) -> str:
        return f"{self.container.address}:{self.port}"

    def _connect(self, timeout: float | None = None) -> Wire:
        sock = socket.create_connection((self.container.address, self.port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # one write per request; never wait for ACKs
        return Wire(sock)

    def call(self, path: str, body: bytes, headers: dict[str, str], timeout: float, *, method: str = "POST",
             head: bytes | None = None) -> Reply:
        """One exchange with the instance's server. ``head``: a request head built by the caller (an HTTP trigger
        passes the client's request through), else a POST of ``path`` with ``headers``."""
        if head is None:
            head = request_head(method, path, self._authority, headers, len(body))
        with self._lock:
            conn = self._idle_connections.pop() if self._idle_connections else None
        try:
            if conn is not None:
                try:
                    reply = conn.exchange(head, body, timeout=timeout, limit=MAX_REPLY, method=method)
                except (PeerClosed, BrokenPipeError, ConnectionResetError):
                    # The server closed a kept-alive connection while it was idle: it never saw this request.
                    conn.close()
                    conn = None
            if conn is None:
                conn = self._connect(timeout)
                reply = conn.exchange(head, body, timeout=timeout, limit=MAX_REPLY, method=method)
        except socket.timeout as exc:
            if conn is not None:
                conn.close()
            raise InvocationTimeout() from exc
        except (OSError, WireError) as exc:
            if conn is not None:
                conn.close()
            raise InstanceBroken(str(exc) or type(exc).__name__) from exc
        if reply.keep_alive:
            with self._lock:
                self._idle_connections.append(conn)
        else:
            conn.close()
        return Reply(int(reply.start[1]), reply.headers, reply.body, reply.lines)
