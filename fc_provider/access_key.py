"""The ``AccessKey`` resource: an AccessKey ID and secret that the fleet's invoke API accepts, with a RAM-like
policy (which actions, on which functions).

Which resource distributes the key: the AccessKey itself, through its Fleet's connection (as a Function does),
not the Fleet. One key is then one resource: creating it puts a 0600 file on every host of the fleet, deleting it
(or removing it from the program) revokes it on every host in that same ``pulumi up``, and a policy change reaches
every host without restarting any agent. Each key is its own file on the host, so stacks sharing an agent never
overwrite each other's keys. A host added to the fleet changes the key's connection, and the key's update puts
it there too.
"""

from __future__ import annotations

import dataclasses
import secrets
import string
from typing import Any, Mapping, Optional, Sequence, Union

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)

from fc_common.policy import DEFAULT_POLICY, problems

from ._errors import AgentAPIError, FcProviderError, HostUnreachable, brief_errors
from ._inputs import InputArgs, nested
from ._model.validation import has_unknown
from ._remote import fleetops as ops
from ._remote.ssh import HostSpec
from .fleet import Fleet

_ALPHABET = string.ascii_letters + string.digits


@dataclasses.dataclass(kw_only=True)
class AccessKeyPolicyArgs(InputArgs):
    """What a key may do, in the spirit of a RAM policy (allow-only: anything not allowed is refused).

    :param actions: Actions allowed: "fc:InvokeFunction", "fc:GetFunction", "fc:ListFunctions" (and the
           reserved "fc:GetAsyncTask", "fc:ListAsyncTasks", "fc:StopAsyncTask"), or patterns with "*" such as
           "fc:*". Default ["fc:*"].
    :param resources: Functions they are allowed on: "acs:fc:<region>:<account>:functions/<name>" with "*"
           wildcards in any part (a fleet's region is "local", its account "fleet"), or "*". ListFunctions is
           checked against "acs:fc:local:fleet:functions/*". Default ["*"].
    """

    actions: Sequence[pulumi.Input[str]] = dataclasses.field(default_factory=lambda: ["fc:*"])
    resources: Sequence[pulumi.Input[str]] = dataclasses.field(default_factory=lambda: ["*"])


class AccessKeyArgs:
    def __init__(self, *, policy: Union[AccessKeyPolicyArgs, Mapping[str, Any], None] = None,
                 description: str = "") -> None:
        """
        :param policy: ``fc.AccessKeyPolicyArgs`` or the same as a dict {"actions": [...], "resources": [...]}.
               Default: every action on every function of the fleet.
        :param description: Free text shown nowhere but the state. Default "".
        """
        self.policy = nested("policy", policy, AccessKeyPolicyArgs) or dict(DEFAULT_POLICY)
        self.description = description


def _new_id() -> str:
    return "LTAI" + "".join(secrets.choice(_ALPHABET) for _ in range(20))  # the shape of an Alibaba Cloud key id


def _new_secret() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(30))


class AccessKeyProvider(ResourceProvider):
    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        policy = news.get("policy")
        # At preview an element still unknown (e.g. a Function's function_arn) waits until it is known.
        failures = [] if has_unknown(policy) else [CheckFailure(f, r) for f, r in problems(policy)]
        return CheckResult(news, failures)

    @staticmethod
    def _put(props: dict[str, Any], key_id: str, secret: str) -> list[str]:
        conn = ops.FleetConnection.from_dict(props["connection"])

        def put(host: HostSpec) -> None:
            with ops.agent_session(conn, host) as (_ssh, agent):
                agent.put_access_key(key_id, secret, props["policy"])

        with ops.fleet_lock(conn, list(conn.hosts), f"distribution of access key {key_id}"):
            ops.on_hosts(f"distribution of access key {key_id}", list(conn.hosts), put)
        return sorted(h.name for h in conn.hosts)

    @staticmethod
    def _revoke(conn: ops.FleetConnection, hosts: list[HostSpec], key_id: str, *, departed: set[str]) -> None:
        def revoke(host: HostSpec) -> None:
            try:
                with ops.agent_session(conn, host) as (_ssh, agent):
                    agent.delete_access_key(key_id)
            except (HostUnreachable, AgentAPIError) as exc:
                if host.name in departed:
                    return  # a host that left the fleet: its agent goes with it
                raise HostUnreachable(host.name, f"cannot revoke access key {key_id} there, so it stays valid on "
                                      f"that host: {getattr(exc, 'reason', exc)}. Run `pulumi up` again once the "
                                      "host answers, or remove the host from the fleet") from exc

        with ops.fleet_lock(conn, hosts, f"revocation of access key {key_id}"):
            ops.on_hosts(f"revocation of access key {key_id}", hosts, revoke)

    @brief_errors
    def create(self, props: dict[str, Any]) -> CreateResult:
        key_id, secret = _new_id(), _new_secret()
        hosts = self._put(props, key_id, secret)
        return CreateResult(id_=key_id, outs={**props, "access_key_id": key_id, "access_key_secret": secret,
                                              "hosts": hosts})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        fleet_hosts = sorted(h["name"] for h in (news.get("connection") or {}).get("hosts") or [])
        changed = [k for k in ("policy", "description") if olds.get(k) != news.get(k)]
        if has_unknown(news.get("connection")) or fleet_hosts != sorted(olds.get("hosts") or []):
            changed.append("hosts")
        return DiffResult(changes=bool(changed), replaces=[], stables=["access_key_id", "access_key_secret"],
                          delete_before_replace=False)

    @brief_errors
    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        hosts = self._put(news, id_, olds["access_key_secret"])
        gone = sorted(set(olds.get("hosts") or []) - set(hosts))
        if gone:  # hosts that left the fleet: revoke where they still answer
            old_conn = ops.FleetConnection.from_dict(olds["connection"])
            self._revoke(old_conn, [old_conn.host(n) for n in gone if n in {h.name for h in old_conn.hosts}], id_,
                         departed=set(gone))
        return UpdateResult(outs={**news, "access_key_id": id_, "access_key_secret": olds["access_key_secret"],
                                  "hosts": hosts})

    @brief_errors
    def delete(self, id_: str, props: dict[str, Any]) -> None:
        conn = ops.FleetConnection.from_dict(props["connection"])
        recorded = set(props.get("hosts") or [])
        hosts = [h for h in conn.hosts if h.name in recorded]
        self._revoke(conn, hosts, id_, departed=set())

    @brief_errors
    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """Refresh: the hosts that hold this key with this policy. A host that lost it, or holds another policy,
        drops out of ``hosts``, and the next ``pulumi up`` puts the key back."""
        if not isinstance(props.get("connection"), dict):
            raise FcProviderError("an access key cannot be imported; declare a new one")
        conn = ops.FleetConnection.from_dict(props["connection"])

        found = ops.ask_agents(conn, list(conn.hosts), f"read of access key {id_}", lambda agent: any(
            k["access_key_id"] == id_ and k["policy"] == props.get("policy") for k in agent.access_keys()), False)
        return ReadResult(id_, {**props, "hosts": sorted(h for h, ok in found.items() if ok)})


class AccessKey(pulumi.dynamic.Resource):
    """An AccessKey ID and secret for the fleet's invoke API (FC's InvokeFunction, GetFunction, ListFunctions),
    limited by its policy. Clients sign with it as the official FC SDK does (ACS3-HMAC-SHA256), e.g. with
    ``ALIBABA_CLOUD_ACCESS_KEY_ID`` / ``ALIBABA_CLOUD_ACCESS_KEY_SECRET`` set for ``fc invoke`` or the SDK.

    Outputs: ``access_key_id``, ``access_key_secret`` (a secret: encrypted in the state, shown only with
    ``--show-secrets``), ``policy``, ``hosts`` (where the key is valid). Deleting the resource revokes the key on
    every host.
    """

    access_key_id: pulumi.Output[str]
    access_key_secret: pulumi.Output[str]
    policy: pulumi.Output[dict]
    hosts: pulumi.Output[list]

    def __init__(self, resource_name: str, args: Optional[AccessKeyArgs] = None, *, fleet: Fleet,
                 opts: Optional[pulumi.ResourceOptions] = None) -> None:
        """
        :param resource_name: The Pulumi resource name.
        :param args: The key's policy and description. Default: every action on every function.
        :param fleet: The fleet whose hosts accept the key.
        :param opts: Pulumi resource options.
        """
        args = args or AccessKeyArgs()
        props = {"connection": fleet.connection, "policy": args.policy, "description": args.description,
                 "access_key_id": None, "access_key_secret": None, "hosts": None}
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
            additional_secret_outputs=["connection", "access_key_secret"], depends_on=[fleet]))
        super().__init__(AccessKeyProvider(), resource_name, props, opts)
