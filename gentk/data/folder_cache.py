"""A folder decoded once: fitted uint8 images under $GENTK_HOME/folders, checked before each use.

An entry is keyed by the folder's fingerprint (every file's path, size and
modification time, and its label) and the fit settings (size, channels, fit),
so a changed folder or another model size is a new entry, never a stale one.
Each entry is written into a temporary folder and renamed into place when
complete; its manifest records the shapes, labels and a sha256 per 4 MiB
chunk, and an entry that does not match them is decoded again, not trusted.
Removing $GENTK_HOME/folders at any time is safe.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .cache import gentk_home
from .dataset import FittedData
from .diskimages import CHUNK_BYTES, DiskImages, verify_chunks
from .fitting import fit_tensor
from .folder import decode_image, decode_workers

FORMAT = 1
#: Entries up to this size are checked chunk by chunk in full at each start (sha256 runs at
#: about 1.7 GB/s here); above it, 1024 chunks chosen at random each time, and every file's size.
FULL_CHECK_BYTES = 4 << 30
SAMPLED_CHUNKS = 1024
MANIFEST_LIMIT = 512 << 20
#: Images decoded (and fitted) together: bounded memory, whatever the folder's size.
DECODE_CHUNK = 256


def cache_root(dataset) -> Path:
    return gentk_home() / "folders" / dataset.fingerprint[:32]


def entry_dir(dataset, size: int, channels: int, fit: str) -> Path:
    return cache_root(dataset) / f"{size}px-{channels}ch-{fit}"


def fitted_folder(dataset, size: int, channels: int, fit: str, console=None, progress: bool = True) -> FittedData:
    """The folder's images at the model's size and channels: from the cache, or decoded into it."""
    entry = entry_dir(dataset, size, channels, fit)
    shape = f"{channels}x{size}x{size} ({fit})"
    damaged = ""
    if entry.exists():
        try:
            return open_entry(entry, dataset, size, channels, fit, f"{shape}, from cache {entry}")
        except (DataError, OSError) as exc:
            damaged = f" (the cached copy was damaged: {exc}; decoded again)"
            shutil.rmtree(entry, ignore_errors=True)
    try:
        build_entry(entry, dataset, size, channels, fit, console, progress)
    except OSError as exc:  # an unwritable or full GENTK_HOME: decode into memory, as before the cache
        fitted = decode_in_memory(dataset, size, channels, fit, console, progress)
        fitted.note = (f"{shape}, decoded in memory, not cached ({exc.strerror or exc}; set GENTK_HOME to a "
                       f"writable folder){fitted.note}")
        return fitted
    return open_entry(entry, dataset, size, channels, fit, f"{shape}, decoded once into the cache {entry}{damaged}")


# -- decoding ---------------------------------------------------------------------------------
class _Decoder:
    """Decodes one split's files in order, fitted, chunk by chunk; skips unreadable files."""

    def __init__(self, dataset, size: int, channels: int, fit: str, advance):
        self.dataset, self.size, self.channels, self.fit, self.advance = dataset, size, channels, fit, advance
        self.pool = ThreadPoolExecutor(max_workers=_workers())

    def split(self, split, sink) -> dict:
        kept, unreadable, first = [], 0, None
        for start in range(0, len(split.paths), DECODE_CHUNK):
            paths = split.paths[start:start + DECODE_CHUNK]
            decoded = list(self.pool.map(_decode_or_error, paths))
            images = []
            for offset, (path, result) in enumerate(zip(paths, decoded)):
                if isinstance(result, DataError):
                    unreadable += 1
                    first = first or f"{path.relative_to(self.dataset.folder).as_posix()}: {_reason(result)}"
                    continue
                images.append(result)
                kept.append(start + offset)
            if images:
                sink(self._fit(images))
            self.advance(len(paths))
        labels = split.labels[kept].tolist() if split.labels is not None else None
        return {"count": len(kept), "labels": labels, "unreadable": unreadable, "first_unreadable": first}

    def _fit(self, images: list[np.ndarray]) -> np.ndarray:
        """Same-shaped images are fitted together (fast); the result keeps the files' order."""
        out = np.empty((len(images), self.channels, self.size, self.size), dtype=np.uint8)
        groups: dict[tuple, list[int]] = {}
        for i, image in enumerate(images):
            groups.setdefault(image.shape, []).append(i)
        for members in groups.values():
            batch = torch.from_numpy(np.stack([images[i] for i in members]))
            out[members] = fit_tensor(batch, self.size, self.channels, self.fit).numpy()
        return out

    def close(self) -> None:
        self.pool.shutdown()


def _decode_or_error(path: Path):
    try:
        return decode_image(path)
    except DataError as exc:
        return exc


def _reason(exc: DataError) -> str:
    text = str(exc)
    return text.split(" is ", 1)[-1] if " is not a readable image" in text else text


def _workers() -> int:
    return decode_workers()


class _FileSink:
    """Appends fitted chunks to a raw file, hashing it per CHUNK_BYTES as it goes."""

    def __init__(self, path: Path):
        self.fh = open(path, "wb")
        self.hashes: list[str] = []
        self._pending = bytearray()

    def __call__(self, images: np.ndarray) -> None:
        data = images.tobytes()
        self.fh.write(data)
        self._pending += data
        while len(self._pending) >= CHUNK_BYTES:
            self.hashes.append(hashlib.sha256(self._pending[:CHUNK_BYTES]).hexdigest())
            del self._pending[:CHUNK_BYTES]

    def close(self) -> list[str]:
        if self._pending:
            self.hashes.append(hashlib.sha256(self._pending).hexdigest())
            self._pending.clear()
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()
        return self.hashes


def _progress(dataset, console, progress: bool):
    from ..progress import simple_progress

    total = sum(len(s.paths) for s in dataset.splits.values())
    return simple_progress(total, f"decoding {dataset.folder.name or dataset.folder}", progress and console is not None,
                           console)


def build_entry(entry: Path, dataset, size: int, channels: int, fit: str, console, progress: bool) -> None:
    """Decode every split into a temporary folder beside ``entry``, then rename it into place."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = entry.parent / f".tmp-{entry.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        manifest = {"format": FORMAT, "fingerprint": dataset.fingerprint, "size": size, "channels": channels,
                    "fit": fit, "splits": {}}
        with _progress(dataset, console, progress) as advance:
            decoder = _Decoder(dataset, size, channels, fit, advance)
            try:
                for name, split in dataset.splits.items():
                    sink = _FileSink(tmp / f"{name}.u8")
                    try:
                        record = decoder.split(split, sink)
                    finally:
                        record_hashes = sink.close()
                    if record["count"] == 0:
                        raise DataError(f"none of the {len(split.paths)} images of the {name} split of "
                                        f"{dataset.folder} could be read (first: {record['first_unreadable']})")
                    manifest["splits"][name] = dict(record, file=f"{name}.u8", chunks=record_hashes)
            finally:
                decoder.close()
        (tmp / "manifest.json").write_text(json.dumps(manifest))
        try:
            os.rename(tmp, entry)
        except OSError:
            if not entry.is_dir():  # another process (a torchrun rank, a second run) finished first: use theirs
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def decode_in_memory(dataset, size: int, channels: int, fit: str, console, progress: bool) -> FittedData:
    records, arrays = {}, {}
    with _progress(dataset, console, progress) as advance:
        decoder = _Decoder(dataset, size, channels, fit, advance)
        try:
            for name, split in dataset.splits.items():
                parts: list[np.ndarray] = []
                records[name] = decoder.split(split, parts.append)
                if not parts:
                    raise DataError(f"none of the images of the {name} split of {dataset.folder} could be read")
                arrays[name] = np.concatenate(parts)
        finally:
            decoder.close()
    return _fitted(arrays, records, dataset, "")


# -- opening ----------------------------------------------------------------------------------
def open_entry(entry: Path, dataset, size: int, channels: int, fit: str, note: str) -> FittedData:
    """The entry's images as DiskImages, after checking the manifest and the files against each other."""
    from ..safeio import read_text

    manifest = json.loads(read_text(entry / "manifest.json", MANIFEST_LIMIT, DataError, "cache manifest"))
    expect = {"format": FORMAT, "fingerprint": dataset.fingerprint, "size": size, "channels": channels, "fit": fit}
    if not isinstance(manifest, dict) or any(manifest.get(k) != v for k, v in expect.items()):
        raise DataError("its manifest is for other data or settings")
    splits = manifest.get("splits")
    if not isinstance(splits, dict) or set(splits) != set(dataset.splits):
        raise DataError("its manifest lists other splits")
    images, records = {}, {}
    for name, record in splits.items():
        images[name] = _open_split(entry, name, record, size, channels, dataset)
        records[name] = record
    return _fitted(images, records, dataset, note)


def _open_split(entry: Path, name: str, record, size: int, channels: int, dataset) -> DiskImages:
    if not isinstance(record, dict):
        raise DataError(f"its manifest's {name} split is not an object")
    count, labels, chunks = record.get("count"), record.get("labels"), record.get("chunks")
    if not isinstance(count, int) or isinstance(count, bool) or not 0 < count <= len(dataset.splits[name].paths):
        raise DataError(f"its manifest's {name} count is {count!r}")
    has_labels = dataset.splits[name].labels is not None
    classes = dataset.num_classes or 0
    if has_labels != (labels is not None) or (labels is not None and (
            not isinstance(labels, list) or len(labels) != count
            or not all(isinstance(y, int) and not isinstance(y, bool) and 0 <= y < classes for y in labels))):
        raise DataError(f"its manifest's {name} labels do not fit the folder")
    if not isinstance(record.get("unreadable"), int):
        raise DataError(f"its manifest's {name} split has no unreadable count")
    shape = (count, channels, size, size)
    nbytes = int(np.prod(shape))
    if (not isinstance(chunks, list) or len(chunks) != math.ceil(nbytes / CHUNK_BYTES)
            or not all(isinstance(c, str) and len(c) == 64 for c in chunks)):
        raise DataError(f"its manifest's {name} chunk hashes do not fit {shape}")
    if record.get("file") != f"{name}.u8":
        raise DataError(f"its manifest names another file for {name}")
    path = entry / f"{name}.u8"
    images = DiskImages(path, shape)  # refuses a file of another size
    which = None if nbytes <= FULL_CHECK_BYTES else sorted(random.sample(range(len(chunks)), SAMPLED_CHUNKS))
    if not verify_chunks(path, chunks, which):
        images.close()
        raise DataError(f"{path.name} does not match its recorded hashes")
    return images


def _fitted(images: dict, records: dict, dataset, note: str) -> FittedData:
    train = images["train"]
    test = images.get("test", train)
    unreadable = sum(r["unreadable"] for r in records.values())
    if unreadable:
        first = next(r["first_unreadable"] for r in records.values() if r["first_unreadable"])
        note += f"; {unreadable} unreadable image file(s) skipped (first: {first})"
    labels = {name: np.asarray(r["labels"], dtype=np.int64) if r["labels"] is not None else None
              for name, r in records.items()}
    return FittedData(train, test, labels["train"], labels.get("test", labels["train"]), note)
