"""pytorch-fid's FID InceptionV3 (pool3, 2048-d), built from weights we supply, and fast feature extraction."""

from __future__ import annotations

import threading
import time
import warnings
from contextlib import contextmanager

import numpy as np
import torch
from pytorch_fid import inception as pfi

from ..progress import simple_progress
from . import compiled

FEATURE_DIMS = 2048

#: On CPUs with up to this many threads, one single-threaded worker per thread beats one
#: batch spread over all threads: Inception's many small convolutions parallelise poorly
#: inside a batch of 8 (2 cores: 14-15.5 vs 11.6-12.3 images/s, benchmarks/fid_speed.py).
MAX_CPU_WORKERS = 4


@contextmanager
def _weights_from(state_dict):
    """pytorch-fid loads its weights with a URL download; hand it ours instead."""
    original = pfi.load_state_dict_from_url
    pfi.load_state_dict_from_url = lambda *args, **kwargs: state_dict
    try:
        yield
    finally:
        pfi.load_state_dict_from_url = original


#: Feature sizes pytorch-fid offers (its --dims): the outputs of its four blocks.
DIMS_CHOICES = tuple(sorted(pfi.InceptionV3.BLOCK_INDEX_BY_DIM))


def build_inception(state_dict, resize_input: bool = True, normalize_input: bool = True,
                    dims: int = FEATURE_DIMS) -> pfi.InceptionV3:
    with _weights_from(state_dict):
        model = pfi.InceptionV3([pfi.InceptionV3.BLOCK_INDEX_BY_DIM[dims]],
                                resize_input=resize_input, normalize_input=normalize_input)
    return model.eval()


def basic_conv_prefixes() -> list[str]:
    """State-dict prefixes of the FID Inception's BasicConv2d units, in registration order.

    pytorch-fid's FID blocks subclass torchvision's and change only forward(),
    so torchvision's Inception3 has the same units under the same names.
    """
    from torchvision.models.inception import BasicConv2d, Inception3

    net = Inception3(num_classes=1008, aux_logits=False, init_weights=False)
    return [name for name, mod in net.named_modules() if isinstance(mod, BasicConv2d)]


class FeatureExtractor:
    """uint8 images (N, C, H, W) -> pool3 features (N, 2048) as float64, as pytorch-fid computes them.

    pytorch-fid reads each PNG with PIL, converts it to RGB and divides by 255;
    the network resizes to 299x299 and maps to [-1, 1]. We do the same from
    uint8 tensors, batched, under inference_mode, in channels_last.
    """

    def __init__(self, weights, device: torch.device, batch_size: int = 200, precision: str = "fp32",
                 progress: bool = True, dims: int = FEATURE_DIMS, compile: bool = False, console=None,
                 compile_asked: bool = False):
        self.weights = weights
        self.dims = dims
        self.device = device
        self.batch_size = batch_size
        self.precision = precision
        self.progress = progress
        self.model = build_inception(weights.state_dict, dims=dims).to(device).to(memory_format=torch.channels_last)
        self.images_per_second = None
        self._frozen = None
        self._fast_cpu = device.type == "cpu" and precision == "fp32"
        self.console = console
        # The compiled package has one batch size; another --batch-size runs the traced graph.
        self._compile = compile and self._fast_cpu and batch_size == compiled.COMPILED_BATCH
        if compile_asked and not self._compile:
            self._say(f"--compile applies to fp32 on the CPU at batch {compiled.COMPILED_BATCH}; "
                      f"{'using the traced network' if self._fast_cpu else 'using the eager network'}")
        self.network_kind = "eager"

    def _say(self, text: str) -> None:
        if self.console is not None:
            self.console.print(text, highlight=False, markup=False)

    def _compiled(self):
        """The AOTInductor package for these weights, loaded from GENTK_HOME/compiled or built
        there now (once); None, with a note, where that cannot be done (no C++ compiler...)."""
        path, key = compiled.package(self.weights.sha256, self.dims)
        try:
            runner = compiled.load(path, key)
            if runner is None:
                path.parent.mkdir(parents=True, exist_ok=True)  # an unwritable cache: one line, below
                again = path.exists() or path.with_suffix(".json").exists()
                self._say(("the cached compiled Inception is damaged or from another build; compiling it again"
                           if again else "compiling Inception for this CPU (once, 10-60 s)")
                          + f" as {path} (--no-compile skips this)")
                record = compiled.build(build_inception(self.weights.state_dict, resize_input=False, dims=self.dims)
                                        .to(memory_format=torch.channels_last), path, key)
                self._say(f"compiled in {record['build_s']} s")
                runner = compiled.load(path, key)
            if runner is not None:
                return compiled.CompiledInception(runner)
        except Exception as exc:  # noqa: BLE001 - compiling is an optimisation; the traced graph always works
            reason = " ".join(str(exc).split())[:200]
            self._say(f"compiled Inception not available ({type(exc).__name__}: {reason}); using the traced network")
        return None

    def _network(self, example: torch.Tensor):
        """On the CPU, a traced and frozen graph (oneDNN fusions, about 1.4x the eager speed).
        optimize_numerics=False keeps batch norm unfolded: folding is faster still but shifts
        the features systematically (a per-feature bias about 4x larger), and FID must stay
        pytorch-fid's number."""
        if not self._fast_cpu:
            return self.model
        if self._compile:
            self._compile = False  # decided once per extractor
            self._frozen = self._compiled()
            if self._frozen is not None:
                self.network_kind = "compiled"
                return self._frozen
        if self._frozen is None:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    self._frozen = torch.jit.freeze(torch.jit.trace(self.model, example[:2]).eval(),
                                                   optimize_numerics=False)
            except Exception:  # noqa: BLE001 - tracing is an optimisation; eager always works
                self._fast_cpu = False
                return self.model
            self.network_kind = "traced"
        return self._frozen

    def _prepare(self, batch: torch.Tensor) -> torch.Tensor:
        x = batch.to(self.device, non_blocking=True).float().div_(255)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return x.contiguous(memory_format=torch.channels_last)

    def _workers(self) -> int:
        threads = torch.get_num_threads()
        # The compiled network's kernels use every thread well (about 35 images/s in one loop).
        if self.device.type == "cpu" and 2 <= threads <= MAX_CPU_WORKERS and self.network_kind != "compiled":
            return threads
        return 1

    def __call__(self, images: torch.Tensor, label: str = "features") -> np.ndarray:
        n = images.shape[0]
        out = np.empty((n, self.dims), dtype=np.float64)
        started = time.perf_counter()
        with torch.no_grad():  # tracing must happen outside inference mode
            net = self._network(self._prepare(images[:2]))
        starts = list(range(0, n, self.batch_size))
        with simple_progress(n, label, self.progress) as advance:
            workers = min(self._workers(), len(starts))
            if workers <= 1:
                self._run(net, images, starts, out, advance)
            else:
                self._run_threads(net, images, starts, out, advance, workers)
        self.images_per_second = n / max(time.perf_counter() - started, 1e-9)
        return out

    def _run(self, net, images, starts, out, advance) -> None:
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")
        with torch.inference_mode(), autocast:
            for start in starts:
                x = self._prepare(images[start:start + self.batch_size])
                # pytorch-fid pools blocks smaller than pool3 to 1x1 the same way.
                feats = net(x)[0]
                if feats.shape[2:] != (1, 1):
                    feats = torch.nn.functional.adaptive_avg_pool2d(feats, (1, 1))
                out[start:start + x.shape[0]] = feats.flatten(1).float().cpu().numpy()
                advance(x.shape[0])

    def _run_threads(self, net, images, starts, out, advance, workers: int) -> None:
        """Batches shared out to ``workers`` threads with one intra-op thread each (torch
        releases the GIL inside the network); each batch's result goes to its own rows."""
        queue = iter(starts)
        lock = threading.Lock()
        errors: list[BaseException] = []

        def work():
            try:
                while True:
                    with lock:
                        start = next(queue, None)
                    if start is None or errors:
                        return
                    self._run(net, images, [start], out, lambda k: None)
                    with lock:
                        advance(min(self.batch_size, images.shape[0] - start))
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                errors.append(exc)

        threads_before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            pool = [threading.Thread(target=work, daemon=True) for _ in range(workers)]
            for t in pool:
                t.start()
            for t in pool:
                t.join()
        finally:
            torch.set_num_threads(threads_before)
        if errors:
            raise errors[0]
