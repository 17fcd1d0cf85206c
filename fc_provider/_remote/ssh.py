"""An SSH executor per host: strict host-key checking, argv commands, SFTP uploads, and HTTP to the agent's
loopback control API through a direct-tcpip channel (nothing is ever exposed on the network).

A user other than root needs passwordless sudo: every command then runs through ``sudo -n`` (never a password
prompt: a missing sudo right fails at once, naming the host), and an upload goes to a private temporary file that
``sudo install`` moves into place with its mode, owned by root.

Provider methods reach hosts through ``_pool`` (one shared connection per host per provider process), never through
a connection stored on a provider object: Pulumi pickles providers.
"""

from __future__ import annotations

import base64
import io
import logging
import secrets
import shlex
import socket
import threading
from dataclasses import dataclass
from typing import Any

import paramiko

from .._errors import AuthenticationFailed, HostKeyMismatch, HostUnreachable, RemoteCommandFailed

# paramiko logs failures that we translate into our own errors; without a handler Python would print them raw.
logging.getLogger("paramiko").addHandler(logging.NullHandler())

_PROBE_TIMEOUT = 5.0


@dataclass(frozen=True)
class HostSpec:
    name: str
    address: str
    port: int
    user: str
    host_public_key: str  # "ssh-ed25519 AAAA..."

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "HostSpec":
        return cls(d["name"], d["address"], int(d.get("port", 22)), d.get("user", "root"), d["host_public_key"])


@dataclass(frozen=True)
class CommandResult:
    exit_status: int
    stdout: str
    stderr: str


def load_private_key(text: str) -> paramiko.PKey:
    errors = []
    for cls in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return cls.from_private_key(io.StringIO(text))
        except (paramiko.SSHException, ValueError) as exc:
            errors.append(f"{cls.__name__}: {exc}")
    raise ValueError("ssh_private_key is not an unencrypted Ed25519, ECDSA or RSA private key in OpenSSH/PEM form")


def _known_hosts(host: HostSpec) -> paramiko.HostKeys:
    parts = host.host_public_key.split()
    if len(parts) < 2:
        raise HostKeyMismatch(host.name, "host_public_key must look like 'ssh-ed25519 AAAA...'")
    key = paramiko.PKey.from_type_string(parts[0], base64.b64decode(parts[1]))
    keys = paramiko.HostKeys()
    entry = host.address if host.port == 22 else f"[{host.address}]:{host.port}"
    keys.add(entry, parts[0], key)
    return keys


def _connect_reason(exc: OSError) -> str:
    """paramiko folds the socket errors of every address tried into one without an errno; name them again."""
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
        reasons = {err.strerror or str(err) for err in exc.errors.values()}
        return "; ".join(sorted(reasons)) or str(exc)
    if isinstance(exc, socket.timeout):
        return "timed out"
    return exc.strerror or str(exc)


class SSHSession:
    """A live connection to one host; use as a context manager."""

    def __init__(self, host: HostSpec, private_key: str, *, timeout: float = 15.0, max_channels: int = 8) -> None:
        self.host = host
        self._private_key = private_key
        self._timeout = timeout
        self._client: paramiko.SSHClient | None = None
        # Threads may share one session; sshd refuses session channels past MaxSessions (10 by default).
        self._channels = threading.BoundedSemaphore(max_channels)

    def __enter__(self) -> "SSHSession":
        client = paramiko.SSHClient()
        for hostname, entries in _known_hosts(self.host).items():
            for keytype, key in entries.items():
                client.get_host_keys().add(hostname, keytype, key)
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            client.connect(
                self.host.address, port=self.host.port, username=self.host.user,
                pkey=load_private_key(self._private_key), look_for_keys=False, allow_agent=False,
                timeout=self._timeout, banner_timeout=self._timeout, auth_timeout=self._timeout,
            )
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise HostKeyMismatch(self.host.name, f"presented a host key ({exc.key.get_name()} "
                                  f"{exc.key.get_base64()[:24]}...) that differs from the fleet's; refusing to "
                                  "connect") from exc
        except paramiko.AuthenticationException as exc:
            client.close()
            raise AuthenticationFailed(self.host.name, f"refused our SSH key: {exc}") from exc
        except paramiko.SSHException as exc:
            client.close()
            if "not found in known_hosts" in str(exc) or "known_hosts" in str(exc):
                raise HostKeyMismatch(self.host.name, f"host key not accepted: {exc}") from exc
            raise HostUnreachable(self.host.name, f"SSH failed: {exc}") from exc
        except (OSError, socket.timeout) as exc:
            client.close()
            raise HostUnreachable(self.host.name, f"cannot connect to {self.host.address}:{self.host.port}: "
                                  f"{_connect_reason(exc)}") from exc
        self._client = client
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def alive(self, *, probe: bool) -> bool:
        """Whether the connection still works; ``probe`` asks the server for an answer (one round trip)."""
        if self._client is None:
            return False
        transport = self._client.get_transport()
        if transport is None or not transport.is_active():
            return False
        if not probe:
            return True
        # Any reply, even "unsupported", proves the server is there. paramiko waits for it as long as the transport
        # lives, so a silent peer gets its transport closed after a bound.
        watchdog = threading.Timer(_PROBE_TIMEOUT, transport.close)
        watchdog.start()
        try:
            transport.global_request("keepalive@openssh.com", wait=True)
        except (paramiko.SSHException, OSError, EOFError):
            return False
        finally:
            watchdog.cancel()
        return transport.is_active()

    @property
    def transport(self) -> paramiko.Transport:
        assert self._client is not None, "SSHSession used outside its context"
        transport = self._client.get_transport()
        assert transport is not None
        return transport

    def run(self, argv: list[str], *, stdin: bytes | None = None, check: bool = True,
            timeout: float = 120.0) -> CommandResult:
        assert self._client is not None, "SSHSession used outside its context"
        command = shlex.join(argv) if self.host.user == "root" else shlex.join(["sudo", "-n", "--", *argv])
        try:
            with self._channels:
                chan_in, chan_out, chan_err = self._client.exec_command(command, timeout=timeout)
                try:
                    if stdin is not None:
                        chan_in.write(stdin)
                    chan_in.channel.shutdown_write()
                    out = chan_out.read().decode(errors="replace")
                    err = chan_err.read().decode(errors="replace")
                    status = chan_out.channel.recv_exit_status()
                finally:
                    chan_out.channel.close()  # a shared connection must not collect finished channels
        except (paramiko.SSHException, OSError) as exc:
            raise HostUnreachable(self.host.name, f"lost the connection while running {argv[0]}: {exc}") from exc
        if check and status != 0:
            raise RemoteCommandFailed(self.host.name, argv, status, err)
        return CommandResult(status, out, err)

    def put_bytes(self, data: bytes, remote_path: str, mode: int = 0o644) -> None:
        """Writes atomically: to a temporary name, then renamed into place (through sudo for a non-root user)."""
        if self.host.user != "root":
            return self._put_as_root(data, remote_path, mode)
        tmp = f"{remote_path}.part"
        try:
            with self._channels, self._client.open_sftp() as sftp:  # type: ignore[union-attr]
                with sftp.open(tmp, "wb") as f:
                    f.set_pipelined(True)
                    f.write(data)
                sftp.chmod(tmp, mode)
                sftp.posix_rename(tmp, remote_path)
        except (paramiko.SSHException, OSError) as exc:
            raise HostUnreachable(self.host.name, f"upload of {remote_path} failed: {exc}") from exc

    def put_file(self, local_path: str, remote_path: str, mode: int = 0o644) -> None:
        """Streams a local file (e.g. a 100 MB image tarball) to ``remote_path``, atomically, as put_bytes does."""
        with open(local_path, "rb") as f:
            self._stream(f, remote_path, mode)

    def _stream(self, source: io.BufferedIOBase, remote_path: str, mode: int) -> None:
        if self.host.user != "root":
            return self._put_as_root(source, remote_path, mode)
        tmp = f"{remote_path}.part"
        try:
            with self._channels, self._client.open_sftp() as sftp:  # type: ignore[union-attr]
                sftp.putfo(source, tmp, confirm=True)
                sftp.chmod(tmp, mode)
                sftp.posix_rename(tmp, remote_path)
        except (paramiko.SSHException, OSError) as exc:
            raise HostUnreachable(self.host.name, f"upload of {remote_path} failed: {exc}") from exc

    def _put_as_root(self, data: bytes | io.BufferedIOBase, remote_path: str, mode: int) -> None:
        staged = f"/tmp/fc-upload-{secrets.token_hex(8)}"  # the user's own file, 0600, until root moves it
        try:
            with self._channels, self._client.open_sftp() as sftp:  # type: ignore[union-attr]
                if isinstance(data, bytes):
                    with sftp.open(staged, "wb") as f:
                        f.chmod(0o600)
                        f.set_pipelined(True)
                        f.write(data)
                else:
                    sftp.putfo(data, staged, confirm=True)
                    sftp.chmod(staged, 0o600)
        except (paramiko.SSHException, OSError) as exc:
            raise HostUnreachable(self.host.name, f"upload of {remote_path} failed: {exc}") from exc
        part = shlex.quote(f"{remote_path}.part")
        self.run(["sh", "-c", f"install -m {mode:o} {shlex.quote(staged)} {part} && "
                              f"mv -f {part} {shlex.quote(remote_path)}; rc=$?; rm -f {shlex.quote(staged)}; exit $rc"])
