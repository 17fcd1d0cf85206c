"""The agent's HTTP surfaces: the control API (loopback, bearer token) and the FC-shaped invoke API.

The top layer: it may import the service facade and everything below it; nothing imports it but ``__main__``."""
