"""The worker actor that runs one rank, and what rank 0 sends back to the driver.

After training, rank 0's weights, metrics and loop state are copied into the driver's
trainer, as Lightning's own spawn launcher does, so the driver's model is the trained one.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import os
from typing import Any, Callable, Dict, NamedTuple, Optional

import ray
import torch
from lightning_utilities.core.apply_func import apply_to_collection

from lightning_tune import shared_data
from lightning_tune.launchers.contract import WorkerContext
from lightning_tune.launchers.ranks import WorkerHost, WorkerPlacement, interface_of
from lightning_tune.launchers.restore import RestoreFiles, materialize, remove_materialized
from lightning_tune.process_state import release_leftovers, start_afresh
from lightning_tune.rank_logs import node_local_log, output_to, take_log


class WorkerOutput(NamedTuple):
    """Rank 0's results, as the driver's trainer takes them back."""

    weights: Optional[Dict[str, torch.Tensor]]
    trainer_state: Any
    results: Any
    callback_metrics: Dict[str, Any]
    logged_metrics: Dict[str, Any]
    progress_bar_metrics: Dict[str, Any]
    fit_loop_state: Optional[dict]
    best_model_path: Optional[str]


class RankResult(NamedTuple):
    """What a rank returns: rank 0's output (None from the others), and the rank's log when
    its trial folder is on another node."""

    output: Optional[WorkerOutput]
    log: Optional[str] = None


@ray.remote
class TrainingWorker:
    """One rank: receives the pickled trainer function, runs it, returns rank 0's results.

    A worker may run several jobs (the warm pool); each starts from the environment the
    actor started with and from fresh random seeds, and one that finished cleanly ends by
    releasing its backend.
    """

    def __init__(self, lightning_tree: Optional[str] = None) -> None:
        self._environ = dict(os.environ)
        if lightning_tree is not None:  # the import every job needs, done before one arrives
            importlib.import_module(lightning_tree)
        # what the imports made lives as long as the process: out of the collector's sight,
        # the collection after each job (``release_leftovers``) takes ~0 s instead of ~0.3 s
        gc.freeze()

    def describe(self) -> WorkerHost:
        return this_host()

    def run(self, payload: bytes, placement: WorkerPlacement, env: Dict[str, str],
            context: WorkerContext, init_hook: Optional[Callable[[], None]],
            restore: Optional[RestoreFiles] = None,
            shared: Optional[Dict[str, Any]] = None) -> RankResult:
        start_afresh(self._environ)
        os.environ.update(env)
        shared_data.use_references(shared or {})  # what the job names by reference
        created = materialize(restore)  # the checkpoint to resume from, if not on this node
        log = node_local_log() if context.send_log_back else context.log_path
        try:
            with output_to(log):
                output = self._train(payload, placement, context, init_hook)
        except BaseException as error:
            if context.send_log_back:  # travels with the error, which Ray pickles
                text = take_log(log)
                with contextlib.suppress(AttributeError, TypeError):
                    error.rank_log = text
            raise
        finally:
            remove_materialized(created)
            release_leftovers()
        return RankResult(output, take_log(log) if context.send_log_back else None)

    @staticmethod
    def _train(payload: bytes, placement: WorkerPlacement, context: WorkerContext,
               init_hook: Optional[Callable[[], None]]) -> Optional[WorkerOutput]:
        if init_hook is not None:
            init_hook()
        function, args, kwargs = ray.cloudpickle.loads(payload)
        trainer = function.__self__
        trainer.strategy.enter_worker(placement, context)
        results = function(*args, **kwargs)
        if context.step_marks is not None:
            context.step_marks.done()
        output = collect_rank_zero_results(trainer, results, placement.global_rank)
        # after a clean finish only: a failed job's worker is killed, and a collective
        # shutdown here could hold back this rank's error while its peers wait
        trainer.strategy.leave_worker()
        return output


def this_host() -> WorkerHost:
    """Where this process runs, as its rank's placement needs it."""
    ip = ray.util.get_node_ip_address()
    # gloo talks over the interface Ray uses (loopback for a local Ray) unless told otherwise
    interface = os.environ.get("GLOO_SOCKET_IFNAME") or interface_of(ip)
    return WorkerHost(ray.get_runtime_context().get_node_id(), ip,
                      [str(gpu) for gpu in ray.get_gpu_ids()], interface)


def _to_cpu(data: Any) -> Any:
    return apply_to_collection(data, torch.Tensor, lambda tensor: tensor.detach().cpu())


def collect_rank_zero_results(trainer: Any, results: Any, rank: int) -> Optional[WorkerOutput]:
    fitting = trainer.state.fn is not None and trainer.state.fn.value == "fit"
    # every rank takes part: metric states may synchronise, shards are gathered
    weights = trainer.strategy.weights_for_driver() if fitting else None
    if rank != 0:
        return None
    connector = trainer._logger_connector
    checkpoint_callback = trainer.checkpoint_callback
    return WorkerOutput(
        weights=_to_cpu(weights),
        trainer_state=trainer.state,
        results=_to_cpu(results),
        callback_metrics=_to_cpu(dict(connector.callback_metrics)),
        logged_metrics=_to_cpu(dict(connector.logged_metrics)),
        progress_bar_metrics=_to_cpu(dict(connector.progress_bar_metrics)),
        fit_loop_state=trainer.fit_loop.state_dict() if fitting else None,
        best_model_path=getattr(checkpoint_callback, "best_model_path", None),
    )


def recover_results_in_driver(trainer: Any, output: WorkerOutput) -> None:
    """Copy rank 0's results into the driver's trainer (Lightning's spawn launcher does too)."""
    if output.weights is not None:
        # not strict: a model may add layers in setup(), which ran only in the workers
        trainer.lightning_module.load_state_dict(output.weights, strict=False)
    trainer.state = output.trainer_state
    connector = trainer._logger_connector
    connector._callback_metrics = output.callback_metrics
    connector._logged_metrics = output.logged_metrics
    connector._progress_bar_metrics = output.progress_bar_metrics
    if output.fit_loop_state is not None:
        trainer.fit_loop.load_state_dict(output.fit_loop_state)
        trainer.fit_loop.restarting = False  # finished, not interrupted: a next fit continues
        trainer.fit_loop._resuming_from_checkpoint = False
    checkpoint_callback = trainer.checkpoint_callback
    if output.best_model_path and hasattr(checkpoint_callback, "best_model_path"):
        checkpoint_callback.best_model_path = output.best_model_path
