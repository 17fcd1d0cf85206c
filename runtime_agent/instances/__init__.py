"""Function instances: the spec a function runs by, the pool of its instances, each instance's lifecycle, the
container driver, the freezer, health checks and the host's capacity.

May import ``state``, ``observe``, the base modules (``errors``, ``config``, ``wire``) and ``fc_common``; never
``events``, ``api`` or the service facade."""
