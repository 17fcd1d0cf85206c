"""What signature verification adds to one request, measured in-process on this machine (no network, so no noise
from the lab): the agent's Authenticator.verify on requests signed as the warm benchmark signs them (the same
headers http.client sends), against the same loop doing nothing but take the next request (the floor).

    .venv/bin/python bench/signature.py [--requests 50000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from fc_provider._remote.signer import Credentials, sign
from runtime_agent.api.auth import Authenticator
from runtime_agent.state.keys import KeyStore

PATH = "/2023-03-30/functions/bench-warm/invocations"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=50000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    keys = KeyStore(Path(tempfile.mkdtemp()) / "keys")
    key = Credentials("LTAIbenchsignature1", "s" * 30)
    keys.put(key.access_key_id, {"secret": key.access_key_secret,
                                 "policy": {"actions": ["fc:InvokeFunction"], "resources": ["*"]}})
    auth = Authenticator(keys)
    per_request = []
    for _ in range(args.rounds):
        heads = []
        for _ in range(args.requests):
            h = sign(key, "POST", f"http://10.0.0.1:9000{PATH}", b"{}")
            h.update({"host": "10.0.0.1:9000", "accept-encoding": "identity", "content-length": "2"})
            heads.append(h)
        t = time.perf_counter()
        for h in heads:
            pass
        floor = time.perf_counter() - t
        t = time.perf_counter()
        for h in heads:
            k = auth.verify("POST", PATH, h, b"{}")
            auth.authorize(k, "fc:InvokeFunction", "acs:fc:local:fleet:functions/bench-warm")
        per_request.append((time.perf_counter() - t - floor) / args.requests)
    print(f"verify + authorize per request: median {statistics.median(per_request) * 1e6:.1f} us over "
          f"{args.rounds} rounds of {args.requests} (min {min(per_request) * 1e6:.1f}, max "
          f"{max(per_request) * 1e6:.1f}); nonces held: {len(auth.nonces)}")


if __name__ == "__main__":
    main()
