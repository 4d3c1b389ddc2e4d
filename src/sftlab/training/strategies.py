"""FSDP2 (`torch.distributed.fsdp.fully_shard`) through Lightning's `ModelParallelStrategy`, told which
layers to shard by the model itself (model/layers.py); `--trainer.strategy fsdp2` on the command line.

Each parameter is a DTensor sharded over all ranks (dim 0); every decoder layer is one unit whose
weights are gathered for its forward and backward and freed after, and the rest of the model
(embeddings, final norm, output layer) is the root unit, gathered for the whole step. The decoder-layer
classes are the ones a transformers model lists in `_no_split_modules` (the modules that must stay whole
on one device), so one config serves Llama, Qwen, Phi, SmolLM, ... Runs wherever torch.distributed does:
CUDA with NCCL, and CPU with gloo (tests/training prove it equal to one process there).

Lightning calls the module's `configure_model` (which builds the model) and then this strategy's
`setup`, where the model is sharded before the optimizer is created and a checkpoint is restored: the
module stays the same on one device, under DDP and under FSDP2. With `trainer.precision` bf16-mixed,
the gathered weights and the compute are bf16 and gradients are reduced in float32
(`MixedPrecisionPolicy`); activation checkpointing per layer is the model's own
(`model.causal_lm.gradient_checkpointing`). Checkpoints are sharded (torch Distributed Checkpoint: one
folder, each rank writes its shards), written whole or not at all (sharded_checkpoints.py).

`fsdp2` and `ddp` (sftlab's `DDP`, Lightning's `DDPStrategy` registered under its usual name) take
`timeout`, in seconds: a rank that dies or freezes stops the others within it, with one line naming the
rank (peers.py). Collectives themselves wait at least Lightning's 30 minutes for ranks that live.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
from lightning import Trainer
from lightning.pytorch.strategies import DDPStrategy, ModelParallelStrategy, StrategyRegistry
from peft import PeftModel
from torch import nn
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard

from sftlab.errors import SftlabError
from sftlab.model.layers import decoder_layer_classes
from sftlab.training.peers import PeerWatch, collective_timeout
from sftlab.training.sharded_checkpoints import save_sharded_atomically

DEAD_RANK_TIMEOUT = 120.0  # seconds; see `timeout` below


def mixed_precision(precision: str) -> MixedPrecisionPolicy:
    """bf16-mixed: gather weights and compute in bf16, reduce gradients in float32 (the sharded weights
    and the optimizer stay float32). Other precisions: the parameters' own dtype throughout."""
    if precision == "bf16-mixed":
        return MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    return MixedPrecisionPolicy()


def shard_model(model: nn.Module, mesh: DeviceMesh, policy: MixedPrecisionPolicy, reshard_after_forward: bool = True) -> nn.Module:
    """`fully_shard` each decoder layer, then the root: the transformers model (inside a peft model, the
    one whose forward `generate` calls). Returns the root. Already sharded models are left as they are."""
    root = model.get_base_model() if isinstance(model, PeftModel) else model
    if isinstance(root, FSDPModule):
        return root
    try:
        layers = decoder_layer_classes(model)
    except SftlabError as err:
        raise SftlabError(f"trainer.strategy fsdp2: {err}") from None
    for layer in [m for m in model.modules() if type(m) in layers]:
        fully_shard(layer, mesh=mesh, mp_policy=policy, reshard_after_forward=reshard_after_forward)
    # The root keeps its weights gathered from its forward to its backward (FSDP2's default for a root),
    # which is what lets the labelled-logits loss read the output weight after the forward (model/head.py).
    fully_shard(root, mesh=mesh, mp_policy=policy)
    root._is_fsdp_managed_module = True  # transformers' mark of FSDP2: generate keeps all ranks in step (synced_gpus)
    return root


def check_strategy_name(strategy: Any) -> None:
    """A strategy given by name must be one that Lightning's registry knows (its own, and `fsdp2`): a
    one-line error instead of Lightning's traceback. A dotted name is a class, which needs `class_path`."""
    if not isinstance(strategy, str) or strategy.lower() in ("auto", *StrategyRegistry.available_strategies()):
        return
    if "." in strategy:
        raise SftlabError(
            f"trainer.strategy: {strategy!r} is read as a strategy name; a class is given as "
            f"--trainer.strategy.class_path {strategy} (or `class_path:` in a config), or use a name: fsdp2, ddp, ..."
        )
    names = ", ".join(["auto", *StrategyRegistry.available_strategies()])
    raise SftlabError(f"trainer.strategy: unknown strategy {strategy!r} (known names: {names})")


class WatchesPeers:
    """A parallel strategy whose ranks watch each other (peers.py): the watch starts with the environment, hears
    of a rank's exception and leaves when the strategy is torn down. Comes before Lightning's strategy in the
    bases; the strategy sets `dead_rank_timeout`."""

    dead_rank_timeout: float
    peer_watch: PeerWatch | None = None

    def setup_environment(self) -> None:
        super().setup_environment()
        self.peer_watch = self.peer_watch or PeerWatch.start(self, self.dead_rank_timeout)

    def on_exception(self, exception: BaseException) -> None:
        super().on_exception(exception)
        if self.peer_watch is not None:
            self.peer_watch.on_exception(exception)

    def teardown(self) -> None:
        if self.peer_watch is not None:
            self.peer_watch.leave("done")
        super().teardown()


class FSDP2(WatchesPeers, ModelParallelStrategy):
    def __init__(
        self,
        reshard_after_forward: bool = True,
        save_distributed_checkpoint: bool = True,
        process_group_backend: str | None = None,
        timeout: float = DEAD_RANK_TIMEOUT,
    ) -> None:
        """
        Args:
            reshard_after_forward: Free each layer's gathered weights after its forward and gather them
                again for the backward (least memory); False keeps them (less communication, ZeRO-2-like).
            save_distributed_checkpoint: Checkpoints as folders of shards, one file per rank (fast, no
                full copy in memory); False gathers everything into one file on rank 0.
            process_group_backend: nccl on GPUs, gloo on CPUs by default.
            timeout: Seconds a rank may give no sign of life (killed, crashed or frozen) before the others
                stop with one line naming it (see the module's docstring).
        """
        super().__init__(
            save_distributed_checkpoint=save_distributed_checkpoint,
            process_group_backend=process_group_backend,
            timeout=collective_timeout(timeout),
        )
        self.reshard_after_forward = reshard_after_forward
        self.save_distributed_checkpoint = save_distributed_checkpoint
        self.dead_rank_timeout = timeout

    def setup_environment(self) -> None:
        # ModelParallelStrategy's "auto" sizes mean tensor parallelism across a node's devices; FSDP over
        # every rank is data_parallel = world size, tensor_parallel = 1. Its constructor takes only numbers,
        # and the world size is known here (these are its constructor arguments; lightning is pinned <2.7).
        self._data_parallel_size, self._tensor_parallel_size = self.num_nodes * self.num_processes, 1
        super().setup_environment()

    def setup(self, trainer: Trainer) -> None:
        model = getattr(self.lightning_module, "model", None)
        if not isinstance(model, nn.Module):
            raise SftlabError(f"trainer.strategy fsdp2 shards the module's `model`; {type(self.lightning_module).__name__} has none")
        policy = mixed_precision(str(trainer.precision))
        shard_model(model, self.device_mesh["data_parallel"], policy, self.reshard_after_forward)
        super().setup(trainer)

    def save_checkpoint(self, checkpoint: dict[str, Any], filepath: str | Path, storage_options: Any | None = None) -> None:
        if not self.save_distributed_checkpoint:
            return super().save_checkpoint(checkpoint, filepath, storage_options)
        save_sharded_atomically(self, checkpoint, Path(filepath), super().save_checkpoint)
        return None


class DDP(WatchesPeers, DDPStrategy):
    def __init__(
        self,
        timeout: float = DEAD_RANK_TIMEOUT,
        process_group_backend: str | None = None,
        start_method: Literal["popen", "spawn", "fork", "forkserver"] = "popen",
        **kwargs: Any,
    ) -> None:
        """Lightning's DDP, with a bound on how long the ranks wait for one that died.

        Args:
            timeout: Seconds a rank may give no sign of life (killed, crashed or frozen) before the others
                stop with one line naming it (see the module's docstring).
            process_group_backend: nccl on GPUs, gloo on CPUs by default.
            start_method: How Lightning starts the other local processes (see Lightning's DDPStrategy).
            kwargs: For torch's DistributedDataParallel (find_unused_parameters, static_graph, ...).
        """
        super().__init__(
            process_group_backend=process_group_backend, timeout=collective_timeout(timeout), start_method=start_method, **kwargs
        )
        self.dead_rank_timeout = timeout


StrategyRegistry.register("fsdp2", FSDP2, description="FSDP2: every decoder layer sharded over all ranks (sftlab)", override=True)
StrategyRegistry.register("ddp", DDP, description="Lightning's DDP with sftlab's dead-rank timeout", override=True)
