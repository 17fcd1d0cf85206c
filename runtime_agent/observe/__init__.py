"""What the agent tells about itself: Prometheus metrics, the recent request log, and the functions' log stores.

May import only the base modules (``errors``, ``config``) and ``fc_common``."""
