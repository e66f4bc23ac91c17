"""FID with pytorch-fid's Inception and numerics: offline weights, cached reference statistics."""

from .score import FidSettings, fid_of_paths, fid_of_run

__all__ = ["FidSettings", "fid_of_paths", "fid_of_run"]
