"""`pulumi up` of N functions (default 20) on the lab's hosts, the no-change `up` after it, and `pulumi refresh` of
the N against a stack with one function, with SSH logins per host counted by each host's own sshd (its log).

Target (issue 4): the refresh of the N opens at most one SSH connection per host and takes under 2x the refresh of
the one-function stack. Both stacks share the fleet's agents (the second Fleet finds them installed).

    source scripts/env.sh && fc-lab up --hosts 3
    .venv/bin/python bench/pulumi_scale.py [--functions 20] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from _pulumi import Stack  # noqa: E402

from fc_lab import Lab  # noqa: E402

PROGRAM = REPO / "tests" / "fleet_program"


def logins(lab: Lab) -> dict[str, int]:
    return {h["name"]: (lab.state_dir / "hosts" / h["name"] / "sshd.log").read_text().count("Accepted publickey")
            for h in lab.fleet()["hosts"]}


def timed(lab: Lab, stack: Stack, *args: str) -> tuple[float, dict[str, int]]:
    before = logins(lab)
    start = time.perf_counter()
    stack.run(*args)
    elapsed = time.perf_counter() - start
    after = logins(lab)
    return elapsed, {h: after[h] - before[h] for h in after}


def make_stack(root: Path, name: str, fleet_file: Path, count: int) -> Stack:
    code = root / name / "code"
    code.mkdir(parents=True)
    (code / "index.py").write_text("def handler(event, context):\n    return event\n")
    stack = Stack(root / name, name, program=PROGRAM)
    stack.config(fleetFile=str(fleet_file), prefix=name, codeDir=str(code), count=str(count))
    return stack


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--functions", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3, help="refreshes of each stack (median reported)")
    args = parser.parse_args()
    lab = Lab()
    fleet_file = lab.fleet_path
    rows: list[tuple[str, float, dict[str, int]]] = []
    with tempfile.TemporaryDirectory(prefix="fc-scale-") as tmp:
        many = make_stack(Path(tmp), f"scale{args.functions}", fleet_file, args.functions)
        one = make_stack(Path(tmp), "scale1", fleet_file, 1)
        try:
            rows.append((f"up, {args.functions} functions (first)", *timed(lab, many, "up", "--yes", "--skip-preview")))
            rows.append((f"up, {args.functions} functions, no change",
                         *timed(lab, many, "up", "--yes", "--skip-preview")))
            rows.append(("up, 1 function (first; agents already there)",
                         *timed(lab, one, "up", "--yes", "--skip-preview")))
            refresh: dict[str, list[tuple[float, dict[str, int]]]] = {"many": [], "one": []}
            for _ in range(args.repeat):  # interleaved, so both see the same machine load
                refresh["one"].append(timed(lab, one, "refresh", "--yes", "--skip-preview"))
                refresh["many"].append(timed(lab, many, "refresh", "--yes", "--skip-preview"))
            for key, label in (("many", f"refresh, {args.functions} functions"), ("one", "refresh, 1 function")):
                times = [t for t, _ in refresh[key]]
                worst = {h: max(c[h] for _, c in refresh[key]) for h in refresh[key][0][1]}
                rows.append((f"{label} (median of {args.repeat})", statistics.median(times), worst))
        finally:
            for stack in (one, many):
                stack.run("destroy", "--yes", check=False)
    print("| step | wall time | SSH logins per host (max) |\n|---|---|---|")
    for label, seconds, counts in rows:
        print(f"| {label} | {seconds:.1f} s | {', '.join(f'{h}: {n}' for h, n in sorted(counts.items()))} |")
    ratio = rows[-2][1] / rows[-1][1]
    print(f"\nrefresh ratio {args.functions} functions / 1 function: {ratio:.2f} (target < 2)")
    print(f"SSH logins per host during a refresh of {args.functions} functions: at most "
          f"{max(rows[-2][2].values())} (target <= 1)")


if __name__ == "__main__":
    main()
