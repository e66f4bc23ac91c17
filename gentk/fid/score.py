"""FID of a run against its dataset's test split, or between two folders / .npz statistics."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from rich.console import Console
from rich.markup import escape

from ..version import __version__
from ..config import TrainConfig, resolve_device
from ..data import load_dataset
from ..data.cache import gentk_home
from ..data.folder import check_one_size, read_images
from ..errors import DataError, UsageError
from ..fsutil import atomic_write_text, probe_writable
from ..runs import RunDir
from ..images import to_uint8
from ..distributed import SINGLE, Distributed
from . import compiled
from .inception import DIMS_CHOICES, FEATURE_DIMS, FeatureExtractor
from .sharded import ShardedExtractor
from .stats import Stats, frechet_distance, load_stats, save_stats, singular_warning, stats_from_features
from .weights import resolve_weights

#: Feature spaces for the Frechet distance: pytorch-fid's Inception (the standard FID), or
#: gentk's MNIST classifier (a digit-aware distance plus class coverage and confidence).
FEATURES = ("inception", "mnist-classifier")

# pytorch-fid's own list; like it, a folder is read without recursion.
FID_IMAGE_SUFFIXES = {".bmp", ".jpg", ".jpeg", ".pgm", ".png", ".ppm", ".tif", ".tiff", ".webp"}


@dataclass
class FidSettings:
    device: str = "auto"
    batch_size: int | None = None  # 8 on the CPU (fits in cache: fastest), 200 on GPUs
    compile: bool | None = None  # the AOTInductor-compiled network on the CPU; None: on unless GENTK_FID_COMPILE=0
    precision: str = "fp32"
    weights: str | None = None
    dims: int = FEATURE_DIMS
    features: str = "inception"
    progress: bool = True
    dist: Distributed | None = None  # set when the extractor is built (torchrun: this rank's place)
    console: Console = field(default_factory=lambda: Console(stderr=True, soft_wrap=True))

    def validate(self) -> None:
        if self.batch_size is not None and self.batch_size < 1:
            raise UsageError(f"--batch-size must be at least 1 (got {self.batch_size})")
        if self.dims not in DIMS_CHOICES:
            raise UsageError(f"--dims must be one of {', '.join(map(str, DIMS_CHOICES))} (got {self.dims})")
        if self.features not in FEATURES:
            raise UsageError(f"--features must be one of {', '.join(FEATURES)} (got {self.features!r})")
        if self.precision not in ("fp32", "bf16"):
            raise UsageError(f"--precision must be fp32 or bf16 (got {self.precision!r})")


def _extractor(settings: FidSettings):
    """The feature extractor; under torchrun each rank's share, gathered (the job's rank 0 writes)."""
    settings.validate()
    dist, device = Distributed.from_env(resolve_device(settings.device))
    progress = settings.progress and dist.is_main
    if settings.features == "mnist-classifier":
        from .classifier import ClassifierFeatures

        inner = ClassifierFeatures(device, settings.batch_size or 500, progress)
    else:
        batch_size = settings.batch_size or (8 if device.type == "cpu" else 200)
        weights = resolve_weights(settings.weights)
        compile_ = compiled.enabled_by_default() if settings.compile is None else settings.compile
        inner = FeatureExtractor(weights, device, batch_size, settings.precision, progress, settings.dims,
                                 compile_, settings.console if dist.is_main else None, settings.compile is True)
    settings.dist = dist
    return ShardedExtractor(inner, dist) if dist.enabled else inner


def _network(extract) -> dict:
    """Which Inception ran (compiled, traced or eager): part of what a speed number means."""
    kind = getattr(extract, "network_kind", None)
    return {"network": kind} if kind else {}


def _is_main(settings: FidSettings) -> bool:
    return (settings.dist or SINGLE).is_main


# -- folders and .npz --------------------------------------------------------------------

def _is_npz(path: Path) -> bool:
    """A path given as saved statistics rather than a folder of images."""
    return path.suffix == ".npz" and not path.is_dir()


def folder_files(folder: Path) -> tuple[list[Path], int]:
    """A folder's image files (not recursive, pytorch-fid's suffixes) and the count of other files."""
    if not folder.is_dir():
        raise DataError(f"{folder} is neither a folder of images nor a .npz of statistics")
    files = sorted(p for p in folder.iterdir() if p.is_file())
    images = [p for p in files if p.suffix.lower() in FID_IMAGE_SUFFIXES]
    if not images:
        raise DataError(f"{folder} holds no images ({', '.join(sorted(FID_IMAGE_SUFFIXES))})")
    return images, len(files) - len(images)


def folder_images(folder: Path) -> tuple[torch.Tensor, int]:
    """uint8 images of a folder and the count of skipped files."""
    images, skipped = folder_files(folder)
    return torch.from_numpy(read_images(images)), skipped


def check_inputs(paths: list[Path]) -> None:
    """Each folder holds images of one size: refused before the network is built or any folder scored."""
    for path in paths:
        if not _is_npz(path):
            check_one_size(folder_files(path)[0], str(path))


def path_stats(path: Path, extract: FeatureExtractor | None, settings: FidSettings) -> tuple[Stats, dict]:
    if _is_npz(path):
        stats = load_stats(path)
        return stats, {"path": str(path), "kind": "npz", "count": stats.count}
    images, skipped = folder_images(path)
    if images.shape[0] < 2:
        raise UsageError(f"FID needs at least 2 images; {path} has {images.shape[0]}")
    if skipped:
        settings.console.print(f"[yellow]{escape(str(path))}: skipped {skipped} non-image file(s)[/yellow]")
    stats = stats_from_features(extract(images, label=path.name or str(path)))
    info = {"path": str(path), "kind": "folder", "count": stats.count, "skipped": skipped}
    info.update(_classes(extract))
    return stats, info


def _classes(extract) -> dict:
    """The classifier's verdict on the images just extracted (nothing for Inception)."""
    probs = getattr(extract, "last_probs", None)
    if probs is None:
        return {}
    from .classifier import class_summary

    return {"classes": class_summary(probs)}


def fid_of_paths(paths: list[str], settings: FidSettings, save_to: str | None = None) -> dict:
    paths = [Path(p) for p in paths]
    if save_to is not None and _is_main(settings):
        probe_writable(Path(save_to).parent)
    need_net = not all(_is_npz(p) for p in paths)
    check_inputs(paths)
    extract = _extractor(settings) if need_net else None
    results = [path_stats(p, extract, settings) for p in paths]
    dims = extract.dims if extract is not None else results[0][0].dims
    out = {"inputs": [info for _, info in results], "features": settings.features, "feature_dims": dims,
           "gentk_version": __version__}
    if extract is not None:
        out["weights"] = extract.weights.record()
        out.update(device=str(extract.device), precision=settings.precision, **_network(extract))
    if save_to is not None:
        if len(paths) != 1:
            raise UsageError("--save-stats takes one input path")
        if _is_main(settings):
            save_stats(Path(save_to), results[0][0])
        out["saved"] = save_to
        return out
    if len(paths) != 2:
        raise UsageError("give two paths to compare (folders of images or .npz statistics), or one run dir")
    (a, _), (b, _) = results
    notes: list[str] = []
    out["fid"] = frechet_distance(a, b, notes)
    notes += [w for w in (singular_warning(a.count, a.dims), singular_warning(b.count, b.dims)) if w]
    out["warnings"] = list(dict.fromkeys(notes))
    return out


# -- runs ----------------------------------------------------------------------------------

def reference_stats(images: torch.Tensor, name: str, extract, console: Console,
                    dist: Distributed = SINGLE) -> tuple[Stats, str]:
    """Statistics of a reference split, cached by its pixels and the weights' hash."""
    digest = hashlib.sha256(images.numpy().tobytes()).hexdigest()[:16]
    size = images.shape[-1]
    path = gentk_home() / "fid" / (f"ref-{name}-{size}px-{images.shape[0]}-{digest}-"
                                       f"d{extract.dims}-w{extract.weights.sha256[:12]}.npz")
    cached = None
    if path.is_file():
        try:
            cached = load_stats(path)
        except DataError:
            console.print(f"[yellow]cached reference statistics {escape(str(path))} are damaged; computing them again[/yellow]")
    # Under torchrun the ranks extract together, so they must agree whether to.
    if not dist.any(cached is None):
        return cached, str(path)
    stats = stats_from_features(extract(images, label=f"reference {name}"))
    if dist.is_main:
        try:  # a cache: an unwritable GENTK_HOME only means computing them again next time
            save_stats(path, stats)
        except OSError as exc:
            console.print(f"[yellow]reference statistics not cached ({escape(str(exc))})[/yellow]", highlight=False)
            return stats, "(not cached)"
    return stats, str(path)


def _run_reference(cfg, model, num_reference: int | None, extract, settings: FidSettings, notes: list[str]):
    """The run's test split fitted as its model sees images, and that split's (cached) statistics."""
    if num_reference is not None and num_reference < 2:
        raise UsageError(f"--num-reference must be at least 2 (got {num_reference})")
    dataset = load_dataset(cfg.data, cfg.data_root)
    if cfg.data_fingerprint and dataset.fingerprint and cfg.data_fingerprint != dataset.fingerprint:
        notes.append(f"--data {cfg.data} changed since this run was trained: the reference is the data as they are now")
    fitted = dataset.fitted(model.image_size, model.channels, cfg.fit or model.fit, settings.console,
                            settings.progress)
    test = fitted.test
    count = len(test) if num_reference is None else min(num_reference, len(test))
    reference = torch.from_numpy(test.read_range(0, count) if hasattr(test, "read_range") else test[:count])
    name = f"folder-{Path(cfg.data[len('folder:'):]).name}" if cfg.data.startswith("folder:") else cfg.data
    slug = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:40]
    ref_stats, ref_path = reference_stats(reference, f"{slug}-test", extract, settings.console,
                                          settings.dist or SINGLE)
    return reference, ref_stats, ref_path


def _check_features(settings: FidSettings, model, cfg) -> None:
    """The MNIST classifier reads 28x28 grayscale digits; colour images it would score as noise."""
    if settings.features == "mnist-classifier" and model.channels != 1:
        raise UsageError(f"--features mnist-classifier reads grayscale digits; this run's data ({cfg.data}) has "
                         f"{model.channels} channels: use --features inception")


def fid_of_samples(run_dir: str | Path, folder: str | Path, settings: FidSettings,
                   num_reference: int | None = None) -> dict:
    """A folder of a run's samples (`gentk sample`) against the run's test split, as `fid_of_run` scores them.

    For samples written on another machine (say a GPU whose checkpoints are too large to
    copy back): only the run's config.json is read, no weights. Nothing is written.
    """
    from ..plugins import get_registry
    from ..runs import RunDir

    started = time.perf_counter()
    cfg = TrainConfig.from_dict(RunDir(run_dir).read_config())
    registry = get_registry()
    model = registry.build_model(registry.spec(cfg.model), cfg.options)
    samples, skipped = folder_images(Path(folder))
    shape = (model.channels, model.image_size, model.image_size)
    if tuple(samples.shape[1:]) != shape:
        raise DataError(f"{folder} holds {tuple(samples.shape[1:])} images; model {cfg.model} makes {shape}")
    _check_features(settings, model, cfg)
    extract = _extractor(settings)
    notes: list[str] = []
    _, ref_stats, ref_path = _run_reference(cfg, model, num_reference, extract, settings, notes)
    score = frechet_distance(stats_from_features(extract(samples, label="samples")), ref_stats, notes)
    classes = _classes(extract)
    notes += [w for c in (samples.shape[0], ref_stats.count) if (w := singular_warning(c, extract.dims))]
    return {
        "scores": {"samples": score},
        "counts": {"samples": int(samples.shape[0])},
        "samples_folder": str(folder), "skipped_files": skipped,
        "reference": {"dataset": cfg.data, "split": "test", "images": ref_stats.count,
                      "image_size": model.image_size, "channels": model.channels, "stats_cache": ref_path},
        "features": settings.features, "feature_dims": extract.dims, "weights": extract.weights.record(),
        **({"sample_classes": classes["classes"]} if classes else {}),
        "device": str(extract.device), "precision": settings.precision, **_network(extract),
        "time_s": round(time.perf_counter() - started, 2), "gentk_version": __version__,
        "warnings": list(dict.fromkeys(notes)),
    }


def fid_of_run(run_dir: str | Path, settings: FidSettings, num_samples: int = 10000,
               num_reference: int | None = None, checkpoint: str | None = None, seed: int = 0) -> dict:
    from ..sampling import load_run

    if num_samples < 2:
        raise UsageError(f"--num-samples must be at least 2 (got {num_samples})")
    started = time.perf_counter()
    if _is_main(settings):  # fid.json goes into the run: find out now, not after minutes of scoring
        probe_writable(RunDir(run_dir).path)
    extract = _extractor(settings)
    loaded = load_run(run_dir, checkpoint, device=str(extract.device))
    model, cfg = loaded.model, loaded.config
    _check_features(settings, model, cfg)
    notes: list[str] = []
    reference, ref_stats, ref_path = _run_reference(cfg, model, num_reference, extract, settings, notes)

    samples = to_uint8(loaded.sample(num_samples, seed=seed))
    scores = {"samples": frechet_distance(stats_from_features(extract(samples, label="samples")), ref_stats, notes)}
    classes = _classes(extract)
    counts = {"samples": num_samples}
    if hasattr(model, "reconstruct"):
        real = reference[:num_samples]
        recon = _reconstruct(model, real, extract.device, 500)
        scores["reconstructions"] = frechet_distance(stats_from_features(extract(recon, label="reconstructions")),
                                                     ref_stats, notes)
        counts["reconstructions"] = int(real.shape[0])
    notes += [w for c in (*counts.values(), ref_stats.count) if (w := singular_warning(c, extract.dims))]
    warnings = list(dict.fromkeys(notes))
    result = {
        "scores": scores,
        "counts": counts,
        "reference": {"dataset": cfg.data, "split": "test", "images": ref_stats.count,
                      "image_size": model.image_size, "channels": model.channels, "stats_cache": ref_path},
        "features": settings.features,
        "feature_dims": extract.dims,
        "weights": extract.weights.record(),
        **({"sample_classes": classes["classes"]} if classes else {}),
        "checkpoint": loaded.checkpoint, "step": loaded.step, "seed": seed,
        "device": str(extract.device), "precision": settings.precision, **_network(extract),
        "time_s": round(time.perf_counter() - started, 2),
        "gentk_version": __version__,
        "warnings": warnings,
    }
    result["path"] = str(Path(run_dir) / result_name(settings.features))
    if _is_main(settings):
        atomic_write_text(Path(result["path"]), json.dumps(result, indent=2) + "\n")
    return result


def result_name(features: str) -> str:
    """fid.json for the standard Inception FID; fid-<features>.json for other feature spaces."""
    return "fid.json" if features == "inception" else f"fid-{features}.json"


@torch.no_grad()
def _reconstruct(model, real_uint8: torch.Tensor, device, batch_size: int) -> torch.Tensor:
    out = []
    for start in range(0, real_uint8.shape[0], batch_size):
        x = real_uint8[start:start + batch_size].to(device).float() / 255
        if model.value_range == "symmetric":
            x = x * 2 - 1
        out.append(to_uint8(model.to_unit(model.reconstruct(x)).float().cpu()))
    return torch.cat(out)
