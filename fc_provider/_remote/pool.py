"""Process-wide SSH connections, one per host identity, shared by every provider call in the process.

Pulumi runs all dynamic resources of a program in one provider process and calls create/read/update/delete from a
small thread pool, one call per resource. A `pulumi refresh` of 20 functions on 3 hosts therefore makes 20 read
calls; sharing a connection per host turns 60 SSH handshakes into 3. The cache lives in this module, never on a
provider object (Pulumi pickles providers), and is keyed by everything that decides what a connection may do:
address, port, user, the host key the fleet declares and the fingerprint of the private key.

A connection is checked before reuse (a round trip when it sat idle), dropped when a command on it fails with a
lost connection, and closed after ``IDLE_CLOSE_SECONDS`` without users. A host that could not be reached is not
tried again for ``UNREACHABLE_RETRY_SECONDS``: the operations that need it meanwhile fail at once with the same
reason, instead of each waiting out its own connect timeout (20 functions on a black-holed host would otherwise
wait 40 x 15 s).
"""

from __future__ import annotations

import hashlib
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import ContextManager, Iterator

from .._errors import HostUnreachable
from .ssh import HostSpec, SSHSession

IDLE_CLOSE_SECONDS = 30.0
PROBE_AFTER_IDLE_SECONDS = 5.0
UNREACHABLE_RETRY_SECONDS = 30.0

_Key = tuple[str, int, str, str, str]


@dataclass
class _Entry:
    session: SSHSession
    users: int = 0
    last_used: float = field(default_factory=time.monotonic)


class ConnectionPool:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[_Key, _Entry] = {}
        self._opening: dict[_Key, threading.Lock] = {}
        self._unreachable: dict[_Key, tuple[float, HostUnreachable]] = {}
        self._reaper: threading.Thread | None = None

    @contextmanager
    def session(self, host: HostSpec, private_key: str) -> Iterator[SSHSession]:
        """A live session to ``host``, shared with other threads of this process."""
        key = _key(host, private_key)
        entry = self._checkout(key, host, private_key)
        try:
            yield entry.session
        except HostUnreachable:
            self._discard(key, entry)  # the next user reconnects instead of failing on a dead transport
            raise
        finally:
            with self._lock:
                entry.users -= 1
                entry.last_used = time.monotonic()
                orphaned = entry.users == 0 and self._entries.get(key) is not entry
            if orphaned:  # discarded while in use: its last user closes it
                entry.session.__exit__(None, None, None)

    def _checkout(self, key: _Key, host: HostSpec, private_key: str) -> _Entry:
        with self._lock:
            opening = self._opening.setdefault(key, threading.Lock())
        with opening:  # threads that need the same host wait for one handshake instead of making their own
            with self._lock:
                entry = self._entries.get(key)
                if entry is not None:
                    entry.users += 1
            if entry is not None:
                idle = time.monotonic() - entry.last_used
                if entry.session.alive(probe=idle > PROBE_AFTER_IDLE_SECONDS):
                    return entry
                with self._lock:
                    entry.users -= 1
                self._discard(key, entry)
            session = self._connect(key, host, private_key)
            entry = _Entry(session, users=1)
            with self._lock:
                self._entries[key] = entry
                self._start_reaper()
            return entry

    def _connect(self, key: _Key, host: HostSpec, private_key: str) -> SSHSession:
        failed = self._unreachable.get(key)
        if failed is not None and time.monotonic() - failed[0] < UNREACHABLE_RETRY_SECONDS:
            ago = time.monotonic() - failed[0]
            raise HostUnreachable(host.name, f"{failed[1].reason} (tried {ago:.0f}s ago; a host that failed is "
                                             f"tried again {UNREACHABLE_RETRY_SECONDS:.0f}s later)")
        try:
            session = SSHSession(host, private_key).__enter__()
        except HostUnreachable as exc:
            self._unreachable[key] = (time.monotonic(), exc)
            raise
        self._unreachable.pop(key, None)
        return session

    def _discard(self, key: _Key, entry: _Entry) -> None:
        with self._lock:
            if self._entries.get(key) is entry:
                del self._entries[key]
        if entry.users <= 0:
            entry.session.__exit__(None, None, None)
        # else: closing it under a running command would be worse; its last user closes it (see session)

    def close_idle(self, older_than: float = IDLE_CLOSE_SECONDS) -> int:
        """Closes connections without users idle for ``older_than`` seconds; returns how many."""
        now = time.monotonic()
        with self._lock:
            idle = [(k, e) for k, e in self._entries.items() if e.users == 0 and now - e.last_used >= older_than]
            for key, _ in idle:
                del self._entries[key]
        for _, entry in idle:
            entry.session.__exit__(None, None, None)
        return len(idle)

    def close_all(self) -> int:
        return self.close_idle(older_than=0.0)

    def _start_reaper(self) -> None:
        if self._reaper is None or not self._reaper.is_alive():
            self._reaper = threading.Thread(target=self._reap, name="fc-ssh-idle-close", daemon=True)
            self._reaper.start()

    def _reap(self) -> None:
        while True:
            time.sleep(IDLE_CLOSE_SECONDS / 3)
            self.close_idle()
            with self._lock:
                if not self._entries:
                    self._reaper = None
                    return


def _key(host: HostSpec, private_key: str) -> _Key:
    fingerprint = hashlib.sha256(private_key.encode()).hexdigest()
    return (host.address, host.port, host.user, host.host_public_key, fingerprint)


POOL = ConnectionPool()


def session(host: HostSpec, private_key: str) -> ContextManager[SSHSession]:
    """The process's shared session to ``host``: ``with _pool.session(host, key) as ssh: ssh.run([...])``."""
    return POOL.session(host, private_key)
