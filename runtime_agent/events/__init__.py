"""The home of work that does not arrive as a synchronous request: asynchronous tasks, timers, object-storage
events. Empty so far.

May import ``instances``, ``state``, ``observe``, the base modules and ``fc_common``; never ``api`` or the service
facade (the facade hands it what it needs)."""
