"""The fuzz harness of tests/test_fuzz.py for as long as you like, with a fresh seed each round.

    python benchmarks/fuzz_long.py --minutes 60 [--examples 400]

CI runs each property with 150 examples (30 for those that resume a run). This script
runs the same file round after round with GENTK_FUZZ_EXAMPLES raised and a new hypothesis
seed per round, until the time is up, then prints one JSON line: rounds, examples tried
(counted from hypothesis' own statistics), seconds, and every failing test with its seed
(rerun one with `pytest tests/test_fuzz.py --hypothesis-seed SEED -k NAME`).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--minutes", type=float, default=60.0, help="how long to fuzz (default: 60)")
    parser.add_argument("--examples", type=int, default=400, help="examples per property per round (default: 400)")
    parser.add_argument("--log", default=None, help="append the output of failing rounds to this file")
    args = parser.parse_args(argv)

    deadline = time.monotonic() + args.minutes * 60
    started = time.monotonic()
    rounds, examples, findings = 0, 0, []
    env = dict(os.environ, GENTK_FUZZ_EXAMPLES=str(args.examples), GENTK_OFFLINE="1")
    while time.monotonic() < deadline:
        seed = random.SystemRandom().randrange(1 << 31)
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_fuzz.py",
                               f"--hypothesis-seed={seed}", "--hypothesis-show-statistics"],
                              cwd=ROOT, env=env, capture_output=True, text=True)
        rounds += 1
        counts = re.findall(r"- (\d+) passing, (\d+) failing", done.stdout)  # hypothesis' statistics
        examples += sum(int(a) + int(b) for a, b in counts)
        failed = re.findall(r"^FAILED (\S+)", done.stdout, flags=re.M)
        findings += [{"test": name, "seed": seed} for name in failed]
        if failed and args.log:
            with open(args.log, "a", encoding="utf-8") as fh:  # the falsifying examples, to reproduce them
                fh.write(f"=== round {rounds}, seed {seed}\n{done.stdout[-20000:]}\n")
        print(f"round {rounds}: seed {seed}, rc {done.returncode}, {len(failed)} failing, "
              f"{examples} examples so far", file=sys.stderr, flush=True)
    print(json.dumps({"rounds": rounds, "examples": examples, "seconds": round(time.monotonic() - started),
                      "examples_per_property_per_round": args.examples, "findings": findings}))
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
