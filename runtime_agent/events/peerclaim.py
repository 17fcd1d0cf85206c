"""Asking a peer agent to record a claim (a timer tick: events/timer.py; an object event: events/oss_claims.py), the
one exchange both use: ``POST`` of the claim, HMAC-signed by the caller, to the peer's invoke port
(api/peer.py answers it).

The answer is the holder the peer has for that claim: the asker when it was free there, else who got it first.
``None`` when the peer does not hold the trigger (404: it will not act on it either) or does not answer in time
(down: its turn is skipped). A peer that refuses the claim otherwise (a bad signature, say) is taken to hold it,
so that nobody acts on a doubt."""

from __future__ import annotations

import http.client
import json
import logging
from typing import Any

log = logging.getLogger("fc-agent")

CLAIM_TIMEOUT = 0.5  # seconds a peer has to answer a claim


class PeerDown(Exception):
    """The peer did not answer (refused, timed out, or an answer that is not one)."""


def ask(peer: dict[str, Any], path: str, claim: dict[str, Any], what: str) -> str | None:
    """The holder ``peer`` records for ``claim`` (see the module's text); raises PeerDown when it does not answer.
    ``what`` names the trigger in the log ("timer t1", "OSS trigger t2")."""
    status, data = exchange(peer, path, claim)
    if status == 404:
        return None
    if status != 200:
        log.warning("%s: peer %s refused the claim: %s %s", what, peer["name"], status, data[:200])
        return peer["name"]
    try:
        return json.loads(data)["holder"]
    except (ValueError, KeyError, TypeError) as exc:
        raise PeerDown(str(exc)) from exc


def exchange(peer: dict[str, Any], path: str, body: dict[str, Any]) -> tuple[int, bytes]:
    """One signed-by-the-caller JSON ``POST`` to ``peer``'s invoke port: the status and body of its answer; raises
    PeerDown when it does not answer within CLAIM_TIMEOUT. Also the provision scalers' sample exchange
    (events/provision_fleet.py)."""
    conn = http.client.HTTPConnection(peer["address"], int(peer.get("port", 9000)), timeout=CLAIM_TIMEOUT)
    try:
        conn.request("POST", path, body=json.dumps(body), headers={"content-type": "application/json"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    except (OSError, http.client.HTTPException) as exc:
        raise PeerDown(str(exc)) from exc
    finally:
        conn.close()
