"""The runtime agent: one daemon per host that runs every function instance as a container.

It keeps its state in SQLite, talks to the host's Docker engine through the docker SDK, serves a control API on
loopback only (bearer token; the provider reaches it through an SSH tunnel) and an invoke API shaped like
Function Compute's (``POST /2023-03-30/functions/{name}/invocations``).
"""

__version__ = "0.1.0"
