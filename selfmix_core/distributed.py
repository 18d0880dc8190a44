"""Data-parallel training over several processes (`torchrun`, torch.distributed).

    torchrun --nproc_per_node 4 -m selfmix_core train --train data.csv --out runs/x

Each process (a *rank*) holds a full copy of the model and of the dataset's texts. The
trainer asks a `DistContext` which part of the work is its own; with one process
(world_size 1, the default) every method here is a no-op and the trainer runs exactly
as it does without it. What is split and what is shared:

  * training steps: every rank draws the SAME global batch (the per-epoch generators
    are seeded from (seed, epoch) alone) and keeps every world_size-th index of it
    (`shard`). Each rank backpropagates its share weighted by len(share) / len(batch)
    and the gradients are SUMMED across ranks (`sum_gradients`), so a step equals the
    single-process step on the whole batch up to dropout masks and summation order.
    Mixup partners are drawn within a rank's share (the paper mixes within a batch;
    a rank's share is a smaller batch of the same distribution);
  * scoring (per-sample losses and probabilities, dropout off): each rank scores every
    world_size-th text and the (N,) / (N, K) arrays are summed across ranks; each row
    comes from exactly one rank (the others hold 0), so every rank ends with all N rows;
  * the GMM: fitted ONCE, on rank 0, over all N losses; rank 0 broadcasts the
    resulting clean probabilities and parameters (`broadcast_arrays`, `broadcast_json`:
    plain tensors and JSON, no pickle);
  * the model: rank 0's initial weights are copied to every rank (`broadcast_module`);
    after that, identical summed gradients keep the copies identical;
  * a stop request on any rank stops every rank at the same check (`any`);
  * checkpoints and output files are written by rank 0 only; `barrier` keeps the
    others from reading a checkpoint before it is complete.

Collectives run on the model's device (NCCL needs CUDA tensors; gloo works on CPU, which
is how the tests run two ranks on one machine). No global state: the context is an
argument of the trainer.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np
import torch

__all__ = ["DistContext", "init_from_env"]


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a data-parallel run.

    rank: this process's index, 0 .. world_size - 1 (rank 0 writes the files).
    world_size: the number of processes; 1 = no distribution.
    device: where collective operations put their tensors (CUDA for NCCL).
    """

    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    def __post_init__(self) -> None:
        if self.world_size < 1 or not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} is not in 0..world_size-1 (world_size={self.world_size})")
        if self.world_size > 1 and not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            raise ValueError("world_size > 1 needs an initialised torch.distributed process group (run under torchrun)")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # ---- splitting the work ------------------------------------------------------------
    def shard(self, idx: np.ndarray) -> np.ndarray:
        """This rank's share of a global index array: every world_size-th item."""
        return idx[self.rank :: self.world_size] if self.enabled else idx

    # ---- collectives -------------------------------------------------------------------
    def sum_gradients(self, params: Iterable[torch.nn.Parameter]) -> None:
        """Sum .grad of `params` across ranks, in place (one flat all-reduce). A parameter
        without a gradient on this rank (no sample in its share) contributes zeros."""
        if not self.enabled:
            return
        params = [p for p in params if p.requires_grad]
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1).float() for g in grads]).to(self.device)
        torch.distributed.all_reduce(flat)
        offset = 0
        for p, g in zip(params, grads):
            n = g.numel()
            p.grad = flat[offset : offset + n].view_as(g).to(device=p.device, dtype=p.dtype)
            offset += n

    def broadcast_module(self, module: torch.nn.Module) -> None:
        """Copy rank 0's parameters and buffers into `module` on every rank (a freshly
        built head is random: without this each rank would start from its own)."""
        if not self.enabled:
            return
        with torch.no_grad():
            for t in list(module.parameters()) + list(module.buffers()):
                buf = t.detach().to(self.device).contiguous()
                torch.distributed.broadcast(buf, src=0)
                t.copy_(buf.to(t.device))

    def sum_arrays(self, *arrays: np.ndarray) -> list[np.ndarray]:
        """Element-wise sums across ranks of numpy arrays of the same shapes on every rank."""
        return self._each_array(arrays, torch.distributed.all_reduce)

    def broadcast_arrays(self, *arrays: np.ndarray) -> list[np.ndarray]:
        """Rank 0's arrays on every rank; the others pass arrays of the same shapes/dtypes."""
        return self._each_array(arrays, lambda t: torch.distributed.broadcast(t, src=0))

    def _each_array(self, arrays: tuple[np.ndarray, ...], collective) -> list[np.ndarray]:
        if not self.enabled:
            return list(arrays)
        out = []
        for a in arrays:
            t = torch.from_numpy(np.ascontiguousarray(a)).to(self.device)
            collective(t)  # in place
            out.append(t.cpu().numpy().astype(a.dtype, copy=False))
        return out

    def any(self, flag: bool) -> bool:
        """True on every rank if `flag` is true on at least one."""
        if not self.enabled:
            return bool(flag)
        t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=self.device)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        return bool(t.item())

    def broadcast_json(self, obj: Any) -> Any:
        """Rank 0's JSON-serialisable `obj` on every rank (others may pass None)."""
        if not self.enabled:
            return obj
        data = json.dumps(obj).encode("utf-8") if self.is_main else b""
        size = torch.tensor([len(data)], dtype=torch.int64, device=self.device)
        torch.distributed.broadcast(size, src=0)
        buf = torch.zeros(int(size.item()), dtype=torch.uint8, device=self.device)
        if self.is_main:
            buf.copy_(torch.frombuffer(bytearray(data), dtype=torch.uint8))
        torch.distributed.broadcast(buf, src=0)
        return json.loads(bytes(buf.cpu().numpy()).decode("utf-8"))

    def barrier(self) -> None:
        if self.enabled:
            torch.distributed.barrier()


def init_from_env(device: str = "auto") -> tuple[DistContext, str]:
    """Join the process group that `torchrun` describes in the environment (WORLD_SIZE,
    RANK, LOCAL_RANK, MASTER_ADDR/PORT). Returns the context and the device name this
    rank trains on: cuda:LOCAL_RANK with NCCL when CUDA is used, the CPU with gloo
    otherwise. Without WORLD_SIZE > 1: a single-process context and `device` unchanged.
    """
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return DistContext(), device
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    use_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if use_cuda:
        if not torch.cuda.is_available():
            raise ValueError("--device cuda was asked for, but no CUDA GPU is available")
        if local_rank >= torch.cuda.device_count():
            raise ValueError(f"rank {rank} wants GPU {local_rank}, but this machine has "
                             f"{torch.cuda.device_count()}; start torchrun with --nproc_per_node <= that")
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
        backend = "nccl"
    else:
        dev = torch.device("cpu")
        backend = "gloo"
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend=backend, rank=rank, world_size=world)
    return DistContext(rank=rank, world_size=world, device=dev), str(dev)
