"""The CI/CD flow of docs/ci-cd.md through Pulumi's Automation API (pulumi.automation), non-interactively:

    python examples/ci/automation.py preview  --stack prod --project .   # on a change (pull request)
    python examples/ci/automation.py up       --stack prod --project .   # on merge (refreshes first)
    python examples/ci/automation.py drift    --stack prod --project .   # scheduled: exit 3 when a host drifted
    python examples/ci/automation.py destroy  --stack prod --project .

Everything secret comes from the environment, as a CI's secret store provides it: PULUMI_CONFIG_PASSPHRASE (or a
Pulumi Cloud token) for the state, FC_SSH_PRIVATE_KEY_FILE / the program's fleet file for SSH; no prompt is ever
shown. Config values given as --config KEY=VALUE are set on the stack first (--secret-config for secrets).
Exit codes: 0 done (drift: no change), 1 the operation failed, 3 drift: the refreshed fleet differs from the code.
"""

from __future__ import annotations

import argparse
import sys

import pulumi.automation as auto

EXIT_OK, EXIT_FAILED, EXIT_DRIFT = 0, 1, 3


def stack_of(args: argparse.Namespace) -> auto.Stack:
    stack = auto.create_or_select_stack(stack_name=args.stack, work_dir=args.project)
    for pair in args.config:
        key, _, value = pair.partition("=")
        stack.set_config(key, auto.ConfigValue(value))
    for pair in args.secret_config:
        key, _, value = pair.partition("=")
        stack.set_config(key, auto.ConfigValue(value, secret=True))
    return stack


def run(args: argparse.Namespace) -> int:
    stack = stack_of(args)
    out = (lambda line: print(line, end="" if line.endswith("\n") else "\n")) if args.verbose else None
    try:
        if args.operation == "preview":
            result = stack.preview(diff=True, on_output=out)
            print(f"preview: {({getattr(k, 'value', k): v for k, v in result.change_summary.items()})}")
        elif args.operation == "up":
            # Refreshing first: a host that drifted since the last up (seen by the drift job) is repaired now.
            result = stack.up(refresh=True, on_output=out)
            print(f"up: {result.summary.result}, {result.summary.resource_changes}")
        elif args.operation == "drift":
            # A refreshing preview that must show no change: what `pulumi preview --refresh --expect-no-changes`
            # does on the command line. A stopped agent, a lost key or a changed function is a change.
            try:
                stack.preview(refresh=True, expect_no_changes=True, diff=True, on_output=out)
            except auto.CommandError as exc:
                if "no changes were expected" in str(exc):
                    print("drift: the hosts differ from the code; `up` repairs them", file=sys.stderr)
                    return EXIT_DRIFT
                raise
            print("drift: none")
        elif args.operation == "destroy":
            stack.destroy(on_output=out)
            print("destroy: done")
    except auto.CommandError as exc:
        print(f"{args.operation} failed: {str(exc).strip().splitlines()[-1] if str(exc).strip() else exc}",
              file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("operation", choices=["preview", "up", "drift", "destroy"])
    p.add_argument("--stack", required=True)
    p.add_argument("--project", default=".", help="the Pulumi project folder (with Pulumi.yaml)")
    p.add_argument("--config", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--secret-config", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--verbose", action="store_true", help="print the engine's output as it comes")
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
