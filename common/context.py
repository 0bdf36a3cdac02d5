"""One context set-up for every entry point: mode and device first, then `init()`, then data parallel.

A run is distributed when a launcher said so: RANK_SIZE > 1 (rank table / mpirun launchers), or msrun's
MS_WORKER_NUM > 1, or OpenMPI's OMPI_COMM_WORLD_SIZE > 1. Rank and size then come from the communication layer,
never from the environment, so every rank agrees with HCCL/NCCL/the CPU collective.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional, Tuple


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    group_size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0 writes logs, checkpoints and the resolved config."""
        return self.rank == 0


_RANK_VARS = (("RANK_ID", "RANK_SIZE"), ("MS_NODE_ID", "MS_WORKER_NUM"),
              ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"))


def launcher_rank() -> Optional[Tuple[int, int]]:
    """(rank, size) from the launcher's environment, (0, 1) when not distributed, None when the launcher has not
    told this process its rank yet (msrun across hosts without --node_rank: only init() knows)."""
    for rank_var, size_var in _RANK_VARS:
        size = int(os.environ.get(size_var, "1") or "1")
        if size > 1:
            rank = os.environ.get(rank_var, "")
            return (int(rank), size) if rank.strip().lstrip("-").isdigit() and int(rank) >= 0 else None
    return 0, 1


def launched_distributed() -> bool:
    """True when a launcher started several ranks (see the module doc for the variables read)."""
    return launcher_rank() != (0, 1)


def init_context(device_target: str, mode: str = "graph", jit_level: str = "", device_id: int = 0,
                 distributed: bool | None = None) -> DistInfo:
    """Set mode/device, and for distributed runs `init()` and DATA_PARALLEL with gradient mean."""
    import mindspore as ms

    from .compat import set_context

    if distributed is None:
        distributed = launched_distributed()
    env_device = os.environ.get("DEVICE_ID")
    set_context(mode, device_target, int(env_device) if env_device else device_id, jit_level or None)
    if not distributed:
        return DistInfo()
    from mindspore.communication import get_group_size, get_rank, init

    init()  # must follow set_context: the collective picks its backend from the device target
    info = DistInfo(rank=get_rank(), group_size=get_group_size())
    ms.reset_auto_parallel_context()
    ms.set_auto_parallel_context(parallel_mode=ms.ParallelMode.DATA_PARALLEL, gradients_mean=True,
                                 device_num=info.group_size)
    return info


def any_rank(signum: int, group_size: int) -> int:
    """A stop request seen by any rank, as a signal number: this rank's own, else SIGTERM when another rank saw one,
    else 0. Every rank must call it at the same point of the run (it is an all-reduce when group_size > 1), so all
    stop at the same step."""
    if group_size <= 1:
        return int(signum)
    import signal

    import mindspore as ms
    from mindspore import ops

    # a float32 sum: the CPU AllReduce kernel takes float16/float32 only
    seen = float(ops.AllReduce(ops.ReduceOp.SUM)(ms.Tensor([1.0 if signum else 0.0], ms.float32)).asnumpy()[0])
    return int(signum) or (int(signal.SIGTERM) if seen > 0 else 0)


def check_distribute(request: str) -> None:
    """Hold ModelZoo's --is_distributed / MindCV's --distribute (`request`: auto/true/false and synonyms) against how
    the run was launched: a mismatch is a UserError saying how to launch it. Several ranks are always started by a
    launcher here (msrun, mpirun, a rank table), so the flag selects nothing by itself."""
    from .errors import UserError

    text = request.strip().lower()
    if text == "auto":
        return
    wanted = text in ("true", "1", "yes", "on")
    launched = launched_distributed()
    if wanted and not launched:
        raise UserError("--distribute/--is_distributed asks for data parallel, but this process was started alone; "
                        "launch it with msrun --worker_num N ... python train.py, mpirun, or scripts/"
                        "run_distribute_train*.sh (or drop the flag for a single device)")
    if launched and not wanted:
        raise UserError("--distribute/--is_distributed is false, but a launcher started several ranks "
                        "(RANK_SIZE/MS_WORKER_NUM/OMPI_COMM_WORLD_SIZE > 1); drop the flag or start one process")
