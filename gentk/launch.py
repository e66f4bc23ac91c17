"""`gentk train ... --nproc N`: torchrun's own launcher, for one machine, without typing torchrun."""

from __future__ import annotations

import os

from .distributed import launched_by_torchrun
from .errors import GentkError, UsageError


def check_nproc(nproc: int) -> bool:
    """True when this process should start ``nproc`` workers; False when it is one of them (or N is 1)."""
    if nproc < 1:
        raise UsageError(f"--nproc must be at least 1 (got {nproc})")
    if launched_by_torchrun():
        world = int(os.environ["WORLD_SIZE"])
        if nproc != world:
            raise UsageError(f"--nproc {nproc} inside a torchrun job of {world} processes; "
                             "drop --nproc when you start gentk with torchrun")
        return False
    return nproc > 1


def launch(nproc: int, argv: list[str]) -> None:
    """Run ``python -m gentk ARGV`` in ``nproc`` processes through torch.distributed.run (--standalone:
    a rendezvous on a free local port). Each worker prints its own errors; this raises one line if any failed."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    args = get_args_parser().parse_args(["--standalone", f"--nproc-per-node={nproc}", "--module", "gentk"])
    # Set after parsing: torchrun's argparse would read gentk's own flags (--nproc) as abbreviations of its.
    args.training_script_args = list(argv)
    try:
        run(args)
    except ChildFailedError as exc:
        failures = sorted(exc.failures.items())
        codes = ", ".join(f"rank {rank} exited with {f.exitcode}" for rank, f in failures)
        err = GentkError(f"distributed training failed ({codes}); the workers' errors are above")
        first = failures[0][1].exitcode if failures else 1
        err.exit_code = first if isinstance(first, int) and 0 < first < 256 else 1
        raise err from None
