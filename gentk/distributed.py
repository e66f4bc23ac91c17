"""torch.distributed for the engine: which process am I, and the few collectives training needs.

torchrun (or `gentk train --nproc N`) starts one process per device and sets
RANK, WORLD_SIZE and LOCAL_RANK; everything here is a no-op in a single
process, so the engine calls it unconditionally.

Gradients are averaged explicitly, phase by phase, right before each optimizer
step, instead of wrapping networks in DistributedDataParallel: DDP's autograd
hooks expect one forward and one backward per wrapped module per iteration,
and GAN phases break that on purpose (the discriminator runs inside the
generator's loss; the generator runs without a backward in the
discriminator's). Averaging the phase's own gradients is the same arithmetic,
works for any plugin, and needs nothing from plugin authors.
"""

from __future__ import annotations

import datetime
import os

import torch
import torch.distributed as td

from .errors import GentkError, UsageError


class RankFailed(GentkError):
    """Another rank hit an error (it printed the message); this one stops too."""


def env_int(name: str, default: int | None = None) -> int:
    """An integer torchrun variable; a missing or malformed one is one line, not a traceback."""
    raw = os.environ.get(name)
    if raw is None:
        if default is None:
            raise UsageError(f"{name} is not set, but WORLD_SIZE is: start several processes with torchrun "
                             "or gentk train --nproc N, or unset WORLD_SIZE")
        return default
    try:
        value = int(raw)
    except ValueError:
        raise UsageError(f"{name}={raw!r} is not an integer (torchrun sets it; unset it to run one process)") from None
    if value < 0:
        raise UsageError(f"{name}={value} is negative")
    return value


def launched_by_torchrun() -> bool:
    return env_int("WORLD_SIZE", 1) > 1


class Distributed:
    """This process's place in the job: rank, world size, and the device it owns."""

    def __init__(self, rank: int = 0, world: int = 1, local_rank: int = 0):
        self.rank = rank
        self.world = world
        self.local_rank = local_rank
        self.comm_device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls, device: torch.device) -> tuple["Distributed", torch.device]:
        """Join the process group torchrun set up (NCCL on CUDA, gloo otherwise); pick this rank's device."""
        if not launched_by_torchrun():
            return cls(), device
        rank, world = env_int("RANK"), env_int("WORLD_SIZE")
        local = env_int("LOCAL_RANK", 0)
        if rank >= world:
            raise UsageError(f"RANK={rank} is not below WORLD_SIZE={world}")
        if device.type == "cuda":
            if local >= torch.cuda.device_count():
                raise UsageError(f"local rank {local} has no GPU: this machine has {torch.cuda.device_count()}; "
                                 "start at most that many processes per node")
            device = torch.device("cuda", local)
            torch.cuda.set_device(device)
        elif device.type == "mps":
            raise UsageError("distributed training needs CUDA (NCCL) or the CPU (gloo); MPS is not supported")
        dist = cls(rank, world, local)
        if not td.is_initialized():
            backend = "nccl" if device.type == "cuda" else "gloo"
            td.init_process_group(backend, timeout=datetime.timedelta(minutes=30),
                                  **({"device_id": device} if device.type == "cuda" else {}))
        dist.comm_device = device if device.type == "cuda" else torch.device("cpu")
        return dist, device

    def close(self) -> None:
        if self.enabled and td.is_initialized():
            td.destroy_process_group()

    # -- collectives ------------------------------------------------------------
    def _to_comm(self, t: torch.Tensor) -> torch.Tensor:
        return t if t.device == self.comm_device else t.to(self.comm_device)

    def mean(self, t: torch.Tensor) -> torch.Tensor:
        """The average of ``t`` over ranks (``t`` itself in one process)."""
        if not self.enabled:
            return t
        out = self._to_comm(t.detach().clone())
        td.all_reduce(out)
        return (out / self.world).to(t.device)

    def any(self, flag: bool) -> bool:
        """True on every rank if ``flag`` is true on any."""
        if not self.enabled:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=self.comm_device)
        td.all_reduce(t, op=td.ReduceOp.MAX)
        return bool(t.item())

    def average_gradients(self, params: list[torch.Tensor]) -> None:
        """Average the gradients of ``params`` over ranks, in one flat all-reduce per dtype."""
        if not self.enabled:
            return
        grads = [p.grad for p in params if p.grad is not None]
        by_dtype: dict = {}
        for g in grads:
            by_dtype.setdefault(g.dtype, []).append(g)
        for group in by_dtype.values():
            flat = torch.cat([g.reshape(-1) for g in group])
            flat = self._to_comm(flat)
            td.all_reduce(flat)
            flat /= self.world
            offset = 0
            for g in group:
                n = g.numel()
                g.copy_(flat[offset:offset + n].view_as(g))
                offset += n

    def broadcast_module(self, module: torch.nn.Module) -> None:
        """Rank 0's parameters and buffers on every rank (the same start everywhere)."""
        if not self.enabled:
            return
        with torch.no_grad():
            for t in list(module.parameters()) + list(module.buffers()):
                buf = self._to_comm(t.detach().clone())
                td.broadcast(buf, 0)
                t.copy_(buf.to(t.device))

    def gather(self, t: torch.Tensor) -> list[torch.Tensor]:
        """Every rank's ``t`` (same shape and dtype on all ranks), in rank order, on the CPU."""
        if not self.enabled:
            return [t.cpu()]
        src = self._to_comm(t.contiguous())
        out = [torch.empty_like(src) for _ in range(self.world)]
        td.all_gather(out, src)
        return [o.cpu() for o in out]

    def gather_rows(self, rows: torch.Tensor) -> torch.Tensor:
        """Concatenate every rank's rows (counts may differ by rank) in rank order, on the CPU."""
        if not self.enabled:
            return rows.cpu()
        counts = self.gather(torch.tensor([rows.shape[0]], dtype=torch.int64))
        counts = [int(c.item()) for c in counts]
        pad = torch.zeros((max(counts),) + tuple(rows.shape[1:]), dtype=rows.dtype, device=rows.device)
        pad[:rows.shape[0]] = rows
        parts = self.gather(pad)
        return torch.cat([p[:c] for p, c in zip(parts, counts)])

    def agree(self, error: BaseException | None) -> None:
        """A collective check-point: if any rank failed, every rank stops.

        The rank that failed re-raises its own error (so its message is printed);
        the others raise RankFailed instead of waiting forever for it.
        """
        failed = self.any(error is not None)
        if error is not None:
            raise error
        if failed:
            raise RankFailed(f"rank {self.rank}: stopped because another rank failed (its error is above)")

    def call(self, fn, *, main_only: bool = False):
        """``fn()`` on every rank (or on rank 0 alone), then :meth:`agree`: a GentkError
        anywhere stops every rank. Returns ``fn``'s result (None on ranks that did not run it)."""
        error = result = None
        if self.is_main or not main_only:
            try:
                result = fn()
            except GentkError as exc:
                error = exc
        self.agree(error)
        return result


#: The single-process default.
SINGLE = Distributed()
