"""What a function's spec (as the provider sends it) means for its instances: the kind of runtime, the
checks made before it is stored, an instance's size and port, and the container an instance runs in.

Three kinds of function:
- event functions on a built-in runtime (``python3.x``, ``nodejs18``, ``nodejs20``): our runtime (runtime.py or
  runtime.js) mounted at ``/opt/fc-runtime``, the code at ``/code``, layers merged at ``/opt``, one request per
  instance;
- web functions on a custom runtime (``custom``, ``custom.debian12``): the user's HTTP server started from the code
  folder with ``custom_runtime_config.command``;
- custom-container functions (``custom-container``): the user's image with its own entrypoint and command; no code
  package, nothing mounted.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Callable

from fc_common import gpu, runtimes
from fc_common.sizing import Size

from ..errors import BadRequest, Conflict
from .driver import AGENT_LABEL, FUNCTION_LABEL, INSTANCE_LABEL, VERSION_LABEL, ContainerSpec
from .lifecycle import LifecycleHooks

RUNTIME_PORT = 9000
STARTUP_CPU = 1.0  # CPU boost while an instance starts; its own limit applies once it answers
BOOTSTRAP_DIR = Path(__file__).parent.parent / "bootstrap"
NODE_RUNTIMES = frozenset(runtimes.NODEJS)
BUILTIN_RUNTIMES = frozenset(runtimes.BUILTIN)  # each runs where runtime_images names an image for it
CUSTOM_RUNTIMES = frozenset(runtimes.CUSTOM)  # the user's own HTTP server, from the code folder
CONTAINER_RUNTIME = runtimes.CONTAINER
RUNTIMES = BUILTIN_RUNTIMES | CUSTOM_RUNTIMES | {CONTAINER_RUNTIME}
# Stored and returned, but not part of what an instance runs: changing them recycles nothing.
NOT_IN_GENERATION = ("description", "tags")
_LOG_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{1,62}$")
_IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}$")


def _runtime_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted([*BOOTSTRAP_DIR.glob("*.py"), *BOOTSTRAP_DIR.glob("*.js")]):
        digest.update(path.read_bytes())
    return digest.hexdigest()


RUNTIME_DIGEST = _runtime_digest()


def generation_of(spec: dict[str, Any], code_checksum: str | None) -> str:
    """Instances of another generation are replaced: a new spec, new code, or a new built-in runtime."""
    running = {k: v for k, v in spec.items() if k not in NOT_IN_GENERATION}
    blob = json.dumps([running, code_checksum, RUNTIME_DIGEST], sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def is_container(spec: dict[str, Any]) -> bool:
    return spec.get("runtime") == CONTAINER_RUNTIME


def is_web(spec: dict[str, Any]) -> bool:
    """Runs the user's own HTTP server (custom runtime or container): concurrency and health checks apply."""
    return spec.get("runtime") in CUSTOM_RUNTIMES or is_container(spec)


def server_config(spec: dict[str, Any]) -> dict[str, Any]:
    """custom_container_config or custom_runtime_config, whichever the runtime reads (both carry port and
    health_check_config)."""
    key = "custom_container_config" if is_container(spec) else "custom_runtime_config"
    return spec.get(key) or {}


def validate(spec: dict[str, Any], checksum: Any) -> None:
    """Refuses a spec this agent cannot run, naming the field and the rule."""
    runtime = spec.get("runtime")
    if runtime not in RUNTIMES:
        raise BadRequest(f"runtime {runtime!r} is not supported by this agent (one of {sorted(RUNTIMES)})")
    if is_container(spec):
        if spec.get("layers"):
            raise BadRequest("layers are not for runtime custom-container: the image brings what it needs")
        if checksum is not None:
            raise BadRequest("code_checksum must be absent or null for a custom-container function: it has no code")
        image = server_config(spec).get("image")
        if not isinstance(image, str) or not _IMAGE.match(image):
            raise BadRequest("custom_container_config.image is required: an image reference such as my/app:1")
        for key in ("command", "entrypoint"):
            value = server_config(spec).get(key)
            if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                raise BadRequest(f"custom_container_config.{key} must be a list of strings or null")
    elif not isinstance(checksum, str):
        raise BadRequest("code_checksum is required")
    if runtime in CUSTOM_RUNTIMES and not server_config(spec).get("command"):
        raise BadRequest("custom_runtime_config.command is required for a custom runtime")
    if is_web(spec):
        n = spec.get("instance_concurrency") or 1
        if not isinstance(n, int) or not 1 <= n <= 200:
            raise BadRequest(f"instance_concurrency must be an integer from 1 to 200, got {n!r}")
    try:
        gpu.validate(spec)
    except gpu.GpuConfigError as exc:
        raise BadRequest(str(exc)) from None
    log_config = spec.get("log_config")
    if log_config:
        for key in ("project", "logstore"):
            if not _LOG_NAME.match(str(log_config.get(key) or "")):
                raise BadRequest(f"log_config.{key} must be 2-63 lowercase letters, digits, '-' or '_', "
                                 f"starting with a letter or digit; got {log_config.get(key)!r}")
    dns = spec.get("custom_dns") or {}
    for option in dns.get("dns_options") or []:
        if not isinstance(option, dict) or not option.get("name"):
            raise BadRequest("custom_dns.dns_options entries need a name: {\"name\": ..., \"value\": ...}")


def check_runtime_image(runtime: str, images: dict[str, str], has_image: Callable[[str], bool], host: str) -> None:
    """A built-in runtime runs only in its own image (runtime_images), never silently in another version's."""
    image = images.get(runtime)
    if not image:
        raise BadRequest(f"runtime {runtime} has no image on host {host}; runtimes with one: "
                         f"{', '.join(sorted(images))} (map it to an image of your own with runtime_images)")
    if not has_image(image):
        raise Conflict(f"runtime {runtime}'s image {image} is not on host {host}; load it there first "
                       f"(`fc-lab images --runtime {runtime}` builds it offline)", code="ImageNotFound")


def concurrency(spec: dict[str, Any]) -> int:
    """The built-in runtime serves one request per instance, as FC's does; web functions take their setting."""
    return max(1, int(spec.get("instance_concurrency") or 1)) if is_web(spec) else 1


def port(spec: dict[str, Any]) -> int:
    return int(server_config(spec).get("port") or RUNTIME_PORT) if is_web(spec) else RUNTIME_PORT


def hooks(spec: dict[str, Any]) -> LifecycleHooks:
    config = spec.get("instance_lifecycle_config") or {}
    init, stop = config.get("initializer") or {}, config.get("pre_stop") or {}
    return LifecycleHooks(
        initializer=init.get("handler") or None, initializer_timeout=float(init.get("timeout") or 3),
        pre_stop=stop.get("handler") or None, pre_stop_timeout=float(stop.get("timeout") or 3),
    )


def dns_settings(spec: dict[str, Any]) -> dict[str, list[str]]:
    """FC's custom_dns as docker's dns, dns_search and dns_opt."""
    dns = spec.get("custom_dns") or {}
    options = [f"{o['name']}:{o['value']}" if o.get("value") not in (None, "") else o["name"]
               for o in dns.get("dns_options") or []]
    return {"dns": list(dns.get("name_servers") or []), "dns_search": list(dns.get("searches") or []),
            "dns_opt": options}


def layer_paths(runtime: str) -> dict[str, str]:
    """Where a built-in runtime finds what layers put in /opt (FC's folders; Lambda's per-version forms too)."""
    paths = {"PATH": "/opt/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
             "LD_LIBRARY_PATH": "/code:/code/lib:/opt/lib:/usr/local/lib"}
    if runtime in NODE_RUNTIMES:
        paths["NODE_PATH"] = f"/opt/nodejs/node_modules:/opt/nodejs/node{runtime[6:]}/node_modules"
    else:
        paths["PYTHONPATH"] = f"/code:/opt/python:/opt/python/lib/{runtime}/site-packages"
    return paths


def with_layer_paths(env: dict[str, str], runtime: str) -> dict[str, str]:
    """The runtime's search paths, after the function's own value of the same variable (its environment_variables
    ``PYTHONPATH=/code/vendor``, say): replacing that value made a function's vendored packages unimportable."""
    return {name: f"{env[name]}:{value}" if env.get(name) else value for name, value in layer_paths(runtime).items()}


def builtin_command(runtime: str) -> list[str]:
    """What a built-in runtime's container runs: our runtime.js or runtime.py."""
    return (["node", "/opt/fc-runtime/runtime.js"] if runtime in NODE_RUNTIMES
            else ["python3", "-u", "/opt/fc-runtime/runtime.py"])


def container_spec(name: str, spec: dict[str, Any], *, instance_id: str, host_name: str, image: str,
                   code_dir: Path | None, network: str, qualifier: str = "LATEST",
                   opt_dir: Path | None = None) -> ContainerSpec:
    """The hardened container of one instance: nobody (65534), read-only root, all capabilities dropped,
    no-new-privileges, memory, CPU and pids limits, a ``/tmp`` tmpfs of ``disk_size``."""
    env = {str(k): str(v) for k, v in (spec.get("environment_variables") or {}).items()}
    env.update({
        "FC_FUNCTION_NAME": name,
        "FC_FUNCTION_MEMORY_SIZE": str(spec.get("memory_size", 128)),
        "FC_FUNCTION_TIMEOUT": str(spec.get("timeout", 3)),
        "FC_INSTANCE_ID": instance_id,
        "FC_QUALIFIER": qualifier,
        # No card unless leased (HostCards sets the leased UUIDs): CUDA images default to all of them, and this
        # is set after the user's variables so none can ask for more.
        "NVIDIA_VISIBLE_DEVICES": "void",
    })
    size = Size.of(spec)
    config = server_config(spec)
    command: list[str] | None
    entrypoint: list[str] | None = None
    binds: dict[str, str] = {}
    working_dir: str | None = None
    if is_container(spec):
        env["FC_SERVER_PORT"] = env["FC_CUSTOM_LISTEN_PORT"] = str(port(spec))
        command, entrypoint = config.get("command") or None, config.get("entrypoint") or None
    else:
        assert code_dir is not None
        env.update({"FC_FUNCTION_HANDLER": spec.get("handler", "index.handler"), "FC_FUNC_CODE_PATH": "/code",
                    "FC_RUNTIME_PORT": str(RUNTIME_PORT), "PYTHONDONTWRITEBYTECODE": "1"})
        binds = {str(code_dir): "/code", str(BOOTSTRAP_DIR): "/opt/fc-runtime"}
        if opt_dir is not None:  # the merged layers; docker mounts /opt before /opt/fc-runtime (shallower first)
            binds[str(opt_dir)] = "/opt"
        working_dir = "/code"
        if spec["runtime"] in CUSTOM_RUNTIMES:  # FC mounts /opt for custom runtimes but adds no search path
            env["FC_SERVER_PORT"] = str(port(spec))
            command = [*config["command"], *(config.get("args") or [])]
        else:
            env.update(with_layer_paths(env, spec["runtime"]))
            command = builtin_command(spec["runtime"])
    return ContainerSpec(
        name=f"fc-{instance_id}",
        image=image,
        command=command,
        entrypoint=entrypoint,
        working_dir=working_dir,
        environment=env,
        labels={AGENT_LABEL: host_name, FUNCTION_LABEL: name, INSTANCE_LABEL: instance_id, VERSION_LABEL: qualifier},
        read_only_binds=binds,
        memory_mb=size.memory_mb,
        cpu=size.cpu,
        startup_cpu=max(size.cpu, STARTUP_CPU),
        tmp_size_mb=int(spec.get("disk_size", 512)),
        network=network,
        **dns_settings(spec),
    )
