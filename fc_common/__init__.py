"""Rules the Pulumi side and the agent share. Both import this package; it imports neither of them (and nothing
outside the standard library), so the provider never reaches into the agent's internals. The agent bundle ships
it beside ``runtime_agent``."""
