"""gentk: train and score generative image models, with plugins."""

import os as _os
import sys as _sys


def _is_fid_command(argv: list[str]) -> bool:
    """Whether this process is `gentk fid ...` (or `python -m gentk fid ...`, torchrun's too)."""
    if len(argv) < 2 or argv[1] != "fid":
        return False
    program = argv[0].replace("\\", "/")
    return program == "-m" or _os.path.basename(program) == "gentk" or program.endswith("gentk/__main__.py")


# `gentk fid` on the CPU: the compiled Inception's kernels split each layer over all threads;
# with OpenMP's default spinning, a core taken by another process made it 1.2-1.3x slower than
# the traced graph (55.8-62.1 s against 42.4-45.2 s for 300 + 300 images beside one busy
# process), passive waiting brings it level (43.7-44.9 s) and costs nothing on an idle CPU
# (25.0 against 25.1 s). It must be set before torch (its OpenMP runtime) loads; a user's own
# OMP_WAIT_POLICY wins. Training is left as it was (not measured with it).
if _is_fid_command(_sys.argv):
    _os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .errors import GentkError  # noqa: E402
from .hookspecs import hookimpl
from .model import Batch, GenerativeModel, ModelSpec, Phase, TrainDefaults
from .options import option
from .version import __version__


def train(model, run_dir=None, **kwargs):
    """Train a registered model; see :func:`gentk.engine.train`."""
    from .engine import train as _train

    return _train(model, run_dir, **kwargs)


def load_run(run_dir, checkpoint=None, device="cpu"):
    """Load a run's model with its latest (or named) checkpoint; see :func:`gentk.sampling.load_run`."""
    from .sampling import load_run as _load_run

    return _load_run(run_dir, checkpoint=checkpoint, device=device)


def sample(run_dir, n, out_dir, **kwargs):
    """Write ``n`` PNG samples from a run (``labels=`` a class or one per image, for
    conditional models); see :func:`gentk.sampling.sample_to_folder`."""
    from .sampling import sample_to_folder

    return sample_to_folder(run_dir, n, out_dir, **kwargs)


__all__ = ["Batch", "GenerativeModel", "GentkError", "ModelSpec", "Phase", "TrainDefaults", "__version__",
           "hookimpl", "load_run", "option", "sample", "train"]
