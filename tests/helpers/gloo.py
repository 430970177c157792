"""Two processes in one group, for the engine's distributed tests: gloo on the CPU, or nccl on
two GPUs (the engine picks the backend from ``train.device``)."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import Any

import torch
import torch.multiprocessing as mp

from fcnlab.runtime.distributed import cleanup_distributed


def _rank_main(rank: int, port: int, function: Callable[..., None], args: tuple[Any, ...]) -> None:
    os.environ.update(
        RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )  # fmt: skip
    torch.set_num_threads(1)  # a forked child must not enter the parent's OpenMP pool
    torch.manual_seed(0)
    try:
        function(rank, *args)
    finally:
        cleanup_distributed()


def run_two_processes(function: Callable[..., None], *args: Any, cuda: bool = False) -> None:
    """``function(rank, *args)`` in two processes with torchrun's environment variables set for
    a group of two on a free local port (the engine joins it from them); rank r's local rank is
    r, so on GPUs it takes GPU r.

    CPU processes are forked (the children skip re-importing torch); with ``cuda`` they are
    spawned, since CUDA cannot start again in a child forked from a process that started it.
    ``function`` must then be importable by name (a module-level function)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start_method = "spawn" if cuda else "fork"
    mp.start_processes(_rank_main, args=(port, function, args), nprocs=2, start_method=start_method)
