"""What the agent keeps on disk: the SQLite store of functions and instances, and the content-addressed code store.

May import only the base modules (``errors``, ``config``) and ``fc_common``."""
