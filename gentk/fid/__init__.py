"""FID with pytorch-fid's Inception and numerics: offline weights, cached reference statistics."""

from .score import FidSettings, fid_of_paths, fid_of_run, fid_of_samples

__all__ = ["FidSettings", "fid_of_paths", "fid_of_run", "fid_of_samples"]
