"""One process or many: the few lines of torch.distributed that training needs, and stop signals.

`torchrun` starts one process per device and tells each its place through the environment (RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT). Without those variables training runs as a single
process and nothing here touches torch.distributed. Multi-node runs need nothing special: on every node run
`torchrun --nnodes N --node-rank K --master-addr HOST --master-port PORT --nproc-per-node G ...`.
"""

import hashlib
import os
import signal
import threading
from dataclasses import dataclass
from typing import Literal

import torch
import torch.distributed as dist
from torch import nn

from .limits import resolve_device

DeviceName = Literal["auto", "cpu", "cuda"]


@dataclass(frozen=True)
class Processes:
    """Where this process stands: its rank among world_size processes and the device it trains on."""

    rank: int  # 0..world_size-1; rank 0 logs, samples and writes checkpoints
    world_size: int  # number of training processes, over all nodes
    local_rank: int  # index of this process on its node: picks its GPU
    device: torch.device  # cpu, or cuda:local_rank

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def start(device: DeviceName = "auto") -> Processes:
    """Join the process group when launched by torchrun (NCCL on CUDA, gloo on CPU); else one process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    dev = torch.device(resolve_device(device))  # the library's one device check (limits.py)
    if dev.type == "cuda" and dev.index is None:  # under torchrun each process takes its local rank's GPU
        dev = torch.device("cuda", local_rank % torch.cuda.device_count())
    if world_size > 1:
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        if not dist.is_initialized():
            backend = "nccl" if dev.type == "cuda" else "gloo"
            kwargs = {"device_id": dev} if dev.type == "cuda" else {}
            dist.init_process_group(backend=backend, rank=rank, world_size=world_size, **kwargs)
    return Processes(rank, world_size, local_rank, dev)


def stop(procs: Processes) -> None:
    """Leave the process group (if this process joined one)."""
    if procs.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(procs: Processes) -> None:
    """Wait for every process (a no-op for one process)."""
    if procs.distributed:
        dist.barrier()


def all_reduce(tensor: torch.Tensor, procs: Processes, op: str = "sum") -> torch.Tensor:
    """Sum / max / min `tensor` over every process, in place; returns it (unchanged for one process)."""
    if procs.distributed:
        ops = {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN}
        dist.all_reduce(tensor, op=ops[op])
    return tensor


def all_gather_strings(text: str, procs: Processes) -> list[str]:
    """Every process's `text`, in rank order."""
    if not procs.distributed:
        return [text]
    gathered: list[str] = [""] * procs.world_size
    dist.all_gather_object(gathered, text)
    return gathered


def parameter_digest(model: nn.Module) -> str:
    """sha256 of every parameter's bytes: equal digests in two processes mean bit-identical weights."""
    h = hashlib.sha256()
    for p in model.parameters():
        h.update(p.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


class StopSignals:
    """SIGINT / SIGTERM set `signum` instead of killing; a second one gets the previous behaviour.

    Installed only in the main thread (Python's rule); the previous handlers come back on exit.
    """

    def __init__(self):
        self.signum, self.previous = 0, {}

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self.previous[s] = signal.signal(s, self.handle)
        return self

    def handle(self, signum, frame) -> None:
        self.signum = signum
        signal.signal(signum, self.previous[signum])  # a second Ctrl-C interrupts at once

    def __exit__(self, *exc) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler)
