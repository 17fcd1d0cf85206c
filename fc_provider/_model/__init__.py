"""What the provider decides without a host: input validation, the Function's state (normalised values, diffs,
outputs), placement, code packing, and the agent bundle.

May import ``fc_provider._errors`` and ``fc_common``; never ``_remote``, a resource module or the CLI."""
