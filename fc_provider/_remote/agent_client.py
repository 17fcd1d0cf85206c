"""A thin client for the runtime agent's control API, spoken over an SSH direct-tcpip channel to the agent's
loopback port. Every response goes through ``_check``, the one place that turns agent errors into AgentAPIError."""

from __future__ import annotations

import http.client
import json
import time
from typing import Any
from urllib.parse import quote, urlencode

import paramiko

from .._errors import AgentAPIError, HostUnreachable


class _ChannelConnection(http.client.HTTPConnection):
    def __init__(self, transport: paramiko.Transport, port: int, timeout: float) -> None:
        super().__init__("127.0.0.1", port, timeout=timeout)
        self._transport = transport

    def connect(self) -> None:
        self.sock = self._transport.open_channel(
            "direct-tcpip", ("127.0.0.1", self.port), ("127.0.0.1", 0), timeout=self.timeout
        )
        self.sock.settimeout(self.timeout)


class AgentClient:
    def __init__(self, host_name: str, transport: paramiko.Transport, port: int, token: str,
                 timeout: float = 120.0) -> None:
        self.host_name = host_name
        self._conn = _ChannelConnection(transport, port, timeout)
        self._token = token

    def close(self) -> None:
        self._conn.close()

    def _request(self, method: str, path: str, body: Any = None, *, token: str | None = None) -> tuple[int, Any]:
        status, raw = self._exchange(method, path, body, token=token)
        return status, (json.loads(raw) if raw else None)

    def _exchange(self, method: str, path: str, body: Any = None, *, token: str | None = None) -> tuple[int, bytes]:
        headers = {"authorization": f"Bearer {self._token if token is None else token}"}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["content-type"] = "application/json"
        try:
            self._conn.request(method, path, body=payload, headers=headers)
            resp = self._conn.getresponse()
            raw = resp.read()
        except (OSError, http.client.HTTPException, paramiko.SSHException) as exc:
            self._conn.close()
            raise HostUnreachable(self.host_name, f"agent control API not reachable: {exc}") from exc
        return resp.status, raw

    def _check(self, status: int, data: Any) -> Any:
        if status >= 400:
            data = data if isinstance(data, dict) else {}
            raise AgentAPIError(self.host_name, status, data.get("Code", "Unknown"), data.get("Message", ""))
        return data

    def raw(self, method: str, path: str, *, token: str | None = None) -> tuple[int, Any]:
        """The unchecked response (tests use it to probe authorization)."""
        return self._request(method, path, token=token)

    def health(self) -> dict[str, Any]:
        return self._check(*self._request("GET", "/healthz"))

    def wait_healthy(self, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.health()
                return self._check(*self._request("GET", "/v1/info"))
            except (HostUnreachable, AgentAPIError) as exc:
                if time.monotonic() > deadline:
                    raise HostUnreachable(self.host_name, f"agent not healthy after {timeout:.0f}s: "
                                          f"{exc.reason}") from exc
                time.sleep(0.2)

    def put_function(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return self._check(*self._request("PUT", f"/v1/functions/{quote(name)}", spec))

    def get_function(self, name: str) -> dict[str, Any] | None:
        status, data = self._request("GET", f"/v1/functions/{quote(name)}")
        if status == 404:
            return None
        return self._check(status, data)

    def list_functions(self) -> list[dict[str, Any]]:
        return self._check(*self._request("GET", "/v1/functions"))["functions"]

    def delete_function(self, name: str) -> bool:
        status, data = self._request("DELETE", f"/v1/functions/{quote(name)}")
        if status == 404:
            return False
        self._check(status, data)
        return True

    def metrics(self) -> str:
        """The agent's Prometheus text exposition."""
        status, raw = self._exchange("GET", "/metrics")
        if status >= 400:
            self._check(status, json.loads(raw or b"{}"))
        return raw.decode()

    def logs(self, function: str | None = None, request_id: str | None = None) -> list[dict[str, Any]]:
        """Per-invocation log tails kept by the agent, newest first; one entry when ``request_id`` is given."""
        query = urlencode({k: v for k, v in (("function", function), ("request_id", request_id)) if v})
        return self._check(*self._request("GET", f"/v1/logs?{query}"))["logs"]

    def put_provision_config(self, name: str, config: dict[str, Any], rank: int, hosts: list[str],
                             peers: list[dict[str, Any]] | None = None, peer_key: str | None = None,
                             qualifier: str = "LATEST") -> dict[str, Any]:
        """``peers`` ({name, address, port} of the hosts) and ``peer_key``: one host decides for the fleet;
        ``qualifier``: LATEST or an alias (FC's rule)."""
        body = {"config": config, "rank": rank, "hosts": hosts, **({"peers": peers, "peer_key": peer_key}
                                                                    if peers else {})}
        return self._check(*self._request("PUT", _provision_path(name, qualifier), body))

    def get_provision_config(self, name: str, qualifier: str = "LATEST") -> dict[str, Any] | None:
        status, data = self._request("GET", _provision_path(name, qualifier))
        return None if status == 404 else self._check(status, data)

    def delete_provision_config(self, name: str, qualifier: str = "LATEST") -> None:
        status, data = self._request("DELETE", _provision_path(name, qualifier))
        if status != 404:
            self._check(status, data)

    def put_gpu_pool(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._check(*self._request("PUT", f"/v1/gpu-pools/{quote(name)}", body))

    def get_gpu_pool(self, name: str) -> dict[str, Any] | None:
        status, data = self._request("GET", f"/v1/gpu-pools/{quote(name)}")
        return None if status == 404 else self._check(status, data)

    def delete_gpu_pool(self, name: str) -> None:
        status, data = self._request("DELETE", f"/v1/gpu-pools/{quote(name)}")
        if status != 404:
            self._check(status, data)

    def instances(self) -> list[dict[str, Any]]:
        return self._check(*self._request("GET", "/v1/instances"))["instances"]

    def access_keys(self) -> list[dict[str, Any]]:
        """The keys the host accepts: ids and policies, never secrets."""
        return self._check(*self._request("GET", "/v1/access-keys"))["access_keys"]

    def put_access_key(self, key_id: str, secret: str, policy: dict[str, Any]) -> dict[str, Any]:
        return self._check(*self._request("PUT", f"/v1/access-keys/{quote(key_id)}",
                                          {"secret": secret, "policy": policy}))

    def delete_access_key(self, key_id: str) -> bool:
        status, data = self._request("DELETE", f"/v1/access-keys/{quote(key_id)}")
        if status == 404:
            return False
        self._check(status, data)
        return True

    # versions and aliases (runtime_agent/api/versions.py)
    def next_version_id(self, name: str) -> int:
        return int(self._check(*self._request("GET", f"/v1/functions/{quote(name)}/versions/next"))["version_id"])

    def publish_version(self, name: str, description: str, version_id: str | None = None) -> dict[str, Any]:
        body = {"description": description, **({"version_id": version_id} if version_id else {})}
        return self._check(*self._request("POST", f"/v1/functions/{quote(name)}/versions", body))

    def list_versions(self, name: str) -> list[dict[str, Any]]:
        return self._check(*self._request("GET", f"/v1/functions/{quote(name)}/versions"))["versions"]

    def get_version(self, name: str, version_id: str) -> dict[str, Any] | None:
        status, data = self._request("GET", f"/v1/functions/{quote(name)}/versions/{quote(version_id)}")
        return None if status == 404 else self._check(status, data)

    def delete_version(self, name: str, version_id: str) -> bool:
        status, data = self._request("DELETE", f"/v1/functions/{quote(name)}/versions/{quote(version_id)}")
        if status == 404:
            return False
        self._check(status, data)
        return True

    # asynchronous invocation: a function's async invoke config and its tasks (FC's task API shapes)
    def put_async_config(self, name: str, config: dict[str, Any], qualifier: str = "LATEST") -> dict[str, Any]:
        path = f"/v1/functions/{quote(name)}/async-invoke-config?{urlencode({'qualifier': qualifier})}"
        return self._check(*self._request("PUT", path, config))

    def get_async_config(self, name: str, qualifier: str = "LATEST") -> dict[str, Any] | None:
        path = f"/v1/functions/{quote(name)}/async-invoke-config?{urlencode({'qualifier': qualifier})}"
        status, data = self._request("GET", path)
        return None if status == 404 else self._check(status, data)

    def delete_async_config(self, name: str, qualifier: str = "LATEST") -> bool:
        path = f"/v1/functions/{quote(name)}/async-invoke-config?{urlencode({'qualifier': qualifier})}"
        status, data = self._request("DELETE", path)
        if status == 404:
            return False
        self._check(status, data)
        return True

    def put_alias(self, name: str, alias: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._check(*self._request("PUT", f"/v1/functions/{quote(name)}/aliases/{quote(alias)}", body))

    def get_alias(self, name: str, alias: str) -> dict[str, Any] | None:
        status, data = self._request("GET", f"/v1/functions/{quote(name)}/aliases/{quote(alias)}")
        return None if status == 404 else self._check(status, data)

    def delete_alias(self, name: str, alias: str) -> bool:
        status, data = self._request("DELETE", f"/v1/functions/{quote(name)}/aliases/{quote(alias)}")
        if status == 404:
            return False
        self._check(status, data)
        return True

    # layer versions (runtime_agent/api/layers.py)
    def next_layer_version(self, name: str) -> int:
        return int(self._check(*self._request("GET", f"/v1/layers/{quote(name)}/versions/next"))["version"])

    def put_layer_version(self, name: str, version: int, body: dict[str, Any]) -> dict[str, Any]:
        return self._check(*self._request("PUT", f"/v1/layers/{quote(name)}/versions/{version}", body))

    def get_layer_version(self, name: str, version: int) -> dict[str, Any] | None:
        status, data = self._request("GET", f"/v1/layers/{quote(name)}/versions/{version}")
        return None if status == 404 else self._check(status, data)

    def delete_layer_version(self, name: str, version: int) -> bool:
        status, data = self._request("DELETE", f"/v1/layers/{quote(name)}/versions/{version}")
        if status == 404:
            return False
        self._check(status, data)
        return True

    # triggers
    def put_trigger(self, function: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return self._check(*self._request("PUT", f"/v1/functions/{quote(function)}/triggers/{quote(name)}", spec))

    def get_trigger(self, function: str, name: str) -> dict[str, Any] | None:
        status, data = self._request("GET", f"/v1/functions/{quote(function)}/triggers/{quote(name)}")
        if status == 404:
            return None
        return self._check(status, data)

    def list_triggers(self, function: str) -> list[dict[str, Any]]:
        return self._check(*self._request("GET", f"/v1/functions/{quote(function)}/triggers"))["triggers"]

    def delete_trigger(self, function: str, name: str) -> bool:
        status, data = self._request("DELETE", f"/v1/functions/{quote(function)}/triggers/{quote(name)}")
        if status == 404:
            return False
        self._check(status, data)
        return True

    def list_tasks(self, name: str, **query: Any) -> dict[str, Any]:
        """ListAsyncTasks; ``query`` takes FC's parameter names (prefix, status, limit, nextToken, ...)."""
        params = urlencode({k: str(v).lower() if isinstance(v, bool) else v for k, v in query.items()
                            if v is not None})
        return self._check(*self._request("GET", f"/2023-03-30/functions/{quote(name)}/async-tasks?{params}"))

    def get_task(self, name: str, task_id: str) -> dict[str, Any]:
        return self._check(*self._request("GET", f"/2023-03-30/functions/{quote(name)}/async-tasks/"
                                                 f"{quote(task_id)}"))

    def stop_task(self, name: str, task_id: str) -> None:
        status, raw = self._exchange("PUT", f"/2023-03-30/functions/{quote(name)}/async-tasks/{quote(task_id)}/stop")
        if status >= 400:
            self._check(status, json.loads(raw or b"{}"))

    def has_image(self, ref: str) -> bool:
        return bool(self._check(*self._request("GET", f"/v1/images?{urlencode({'ref': ref})}"))["present"])

    def load_image(self, ref: str, file_name: str) -> dict[str, Any]:
        """Loads a tarball uploaded to the agent's images folder (docker load or import), then the agent removes it."""
        return self._check(*self._request("POST", "/v1/images", {"ref": ref, "file": file_name}))


def _provision_path(name: str, qualifier: str) -> str:
    return f"/v1/functions/{quote(name)}/provision-config?{urlencode({'qualifier': qualifier or 'LATEST'})}"
