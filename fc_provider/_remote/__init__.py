"""Everything that reaches a host: the SSH session and its pool, remote commands as data, the deploy lock, fleet
operations run in parallel, and the client of the agent's control API (HTTP through an SSH tunnel).

May import ``fc_provider._errors``, ``fc_provider._model`` and ``fc_common``; never a resource module or the CLI."""
