"""gentk: train and score generative image models, with plugins."""

from .errors import GentkError
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
