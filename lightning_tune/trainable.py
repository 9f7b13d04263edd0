"""The trainable factory: a LightningModule class in, a Tune function trainable out.

``lightning_trainable`` (and ``tune_lightning``) turn their arguments into a
:class:`~lightning_tune.spec.TrialSpec`; :class:`TrialRunner` is what runs in each trial
process: it starts a distributed trial's workers first (they come up meanwhile), builds the
model and datamodule from the trial's config, a Trainer with the spec's strategy and the
report callback, and fits, continuing from the checkpoint Tune restarts the trial from.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import ray
from ray import tune

from lightning_tune import shared_data

from lightning_tune.callbacks import (TrialHyperparameters, TuneReportCheckpointCallback)
from lightning_tune.launchers.ray import start_workers_early
from lightning_tune.lightning_cli import CONFIG_FILENAME
from lightning_tune.lightning_trees import tree_module
from lightning_tune.process_state import start_afresh
from lightning_tune.rank_logs import TRIAL_LOG, output_to, rank_log_path
from lightning_tune.spec import TrialSpec
from lightning_tune.strategies import make_strategy
from lightning_tune.trackers import (LoggersArgument, TrialConfigLogged, TrialInfo,
                                     trial_loggers)
from lightning_tune.trial_folder import trial_folder


def lightning_trainable(model_cls: type, *, datamodule: Any = None,
                        metric: Union[str, Sequence[str]] = "val_loss",
                        mode: Union[str, Sequence[str]] = "min", max_epochs: int = 10,
                        strategy: Optional[str] = None,
                        num_workers: int = 1, cpus_per_worker: float = 1,
                        gpus_per_worker: float = 0,
                        trainer_kwargs: Optional[Dict[str, Any]] = None,
                        callbacks: Optional[Sequence[Any]] = None,
                        worker_timeout_s: Optional[float] = None,
                        reuse_workers: bool = True,
                        strategy_kwargs: Optional[Dict[str, Any]] = None,
                        loggers: LoggersArgument = None) -> Callable[[dict], None]:
    """A Tune function trainable, resources attached, that trains ``model_cls`` on a config.

    Each trial builds the model (and the datamodule, if a class) from its config, trains it
    with a fresh Trainer (``strategy="ddp"``, ``"fsdp"`` or ``"horovod"``: ``num_workers`` Ray
    actors in the trial's own bundles; ``strategy_kwargs`` go to that strategy) and reports
    every validation epoch with a checkpoint. A restarted trial resumes from its last
    checkpoint with its epoch count intact.
    ``worker_timeout_s`` ends a trial whose rank makes no progress for that long (see
    :class:`~lightning_tune.RayDDPStrategy`). ``reuse_workers``: a trial process that Tune
    reuses (``TuneConfig(reuse_actors=True)``, which ``tune_lightning`` sets) keeps its
    worker actors warm for the next trial. ``loggers``: the trackers each trial logs to from
    rank 0, named after the trial, its config as hyperparameters: names ("tensorboard", the
    default; "csv"; "mlflow"), False for none, or a function taking a
    :class:`~lightning_tune.trackers.TrialInfo` and returning Lightning loggers. ``metric``
    (and ``mode``) may be lists: every report must hold each objective. Every argument is
    checked here, before Ray starts.
    """
    return trainable_for(TrialSpec.from_arguments(locals()))


def trainable_for(spec: TrialSpec, constants: Optional[Dict[str, Any]] = None
                  ) -> Callable[[dict], None]:
    """The Tune function trainable of ``spec``, with the trial's resources attached.

    A datamodule instance goes into Ray's object store once, when Ray is running (see
    :mod:`lightning_tune.shared_data`); otherwise it is pickled with the trainable.
    ``constants``: the references of the space's shared constants, which trials fetch.
    """
    shares_datamodule = spec.datamodule is not None and not isinstance(spec.datamodule, type) \
        and ray.is_initialized()
    references = shared_data.share(spec.datamodule) if shares_datamodule else {}
    runner = TrialRunner(dataclasses.replace(spec, datamodule=None) if references else spec,
                         datamodule_key=next(iter(references), None))
    references.update(constants or {})

    def train_lightning(config: Dict[str, Any]) -> None:
        shared_data.use_references({})
        runner.run(config)

    def train_lightning_on_shared(config: Dict[str, Any], shared: List[Dict[str, Any]]) -> None:
        shared_data.use_references(shared[0])
        runner.run(config)

    name = f"train_{spec.model_cls.__name__}"
    for function in (train_lightning, train_lightning_on_shared):
        function.__name__ = function.__qualname__ = name
    # the references in a list: Ray hands them over as references, not as their objects
    trainable = tune.with_parameters(train_lightning_on_shared, shared=[references]) \
        if references else train_lightning
    return tune.with_resources(trainable, spec.trial_resources())


class TrialRunner:
    """Runs one trial of ``spec`` in a Tune trial process; pickled into each trial.

    ``datamodule_key``: the spec's datamodule is the shared object under this key, fetched
    from the object store by each trial.
    """

    def __init__(self, spec: TrialSpec, datamodule_key: Optional[str] = None) -> None:
        self.spec = self._spec = spec
        self.datamodule_key = datamodule_key

    def run(self, config: Dict[str, Any]) -> None:
        start_afresh()  # Tune may have run another trial in this process before
        if self.spec.strategy is not None:  # they start while this process builds the trial
            start_workers_early(self._strategy())
        if self.datamodule_key is not None:
            self.spec = dataclasses.replace(self._spec,
                                            datamodule=shared_data.fetch(self.datamodule_key))
        trial_dir = trial_folder()
        # what this process prints goes to the trial folder: rank 0's log when it trains
        # alone, else trial.log (each rank keeps a log of its own while it trains, rank 0
        # too when it trains in this process)
        log = rank_log_path(trial_dir, 0) if self.spec.strategy is None \
            else os.path.join(trial_dir, TRIAL_LOG)
        with output_to(log):
            self._train(config, trial_dir)

    def _train(self, config: Dict[str, Any], trial_dir: str) -> None:
        """Builds from the config with its shared constants fetched; trackers and checkpoints
        see each one by name and size, as plain data."""
        spec = self.spec
        built_from = shared_data.with_constants(config)
        config = shared_data.constants_named(config)
        if spec.lightning_cli is not None:
            trial = spec.lightning_cli.trial(built_from, max_epochs=spec.max_epochs)
            model, datamodule, settings = trial.model, trial.datamodule, trial.trainer_settings
            _write_text(os.path.join(trial_dir, CONFIG_FILENAME), trial.config_text)
        else:
            (model, datamodule), settings = spec.routing.build(built_from), {}
        reporter = spec.report_callback or TuneReportCheckpointCallback.make_for_tree(
            spec.tree, on="validation_end")
        reporter.required_metric = spec.metric
        callbacks: List[Any] = list(settings.pop("callbacks", None) or []) + list(spec.callbacks)
        if reporter not in callbacks:
            callbacks.append(reporter)
        callbacks.append(TrialHyperparameters.make_for_tree(spec.tree, config))
        callbacks.append(TrialConfigLogged.make_for_tree(spec.tree, config))
        loggers = trial_loggers(spec.loggers, TrialInfo.current(config, trial_dir), spec.tree,
                                spec.mlflow_uri)
        trainer = tree_module(spec.tree).Trainer(
            **self._trainer_arguments(callbacks, loggers, settings, trial_dir))
        with _restored_checkpoint(spec.checkpoint_filename) as ckpt_path:
            fit_as_data(trainer, model, datamodule, ckpt_path)

    def _trainer_arguments(self, callbacks: List[Any], loggers: Any, settings: Dict[str, Any],
                           trial_dir: str) -> Dict[str, Any]:
        """The toolkit's defaults (devices and the default trackers included), then the
        LightningCLI config's trainer ``settings``, then ``trainer_kwargs``; epochs, strategy,
        callbacks and loggers the search names, which the spec owns, last."""
        spec = self.spec
        checkpoint_class = tree_module(spec.tree).callbacks.ModelCheckpoint
        arguments: Dict[str, Any] = dict(
            default_root_dir=trial_dir, enable_progress_bar=False, enable_model_summary=False,
            # Tune keeps the checkpoints; Lightning refuses False beside a ModelCheckpoint
            enable_checkpointing=any(isinstance(c, checkpoint_class) for c in callbacks),
            logger=loggers)
        if spec.strategy is None:
            arguments.update(accelerator="gpu" if spec.gpus_per_worker else "cpu", devices=1)
        arguments.update(settings)
        arguments.update(spec.trainer_kwargs)
        arguments.update(max_epochs=spec.max_epochs, strategy=self._strategy(),
                         callbacks=callbacks)
        if spec.loggers is not None:  # named by the search: not the project config's
            arguments["logger"] = loggers
        return arguments

    def _strategy(self) -> Any:
        spec = self.spec
        if spec.strategy is None:
            return "auto"
        return make_strategy(spec.strategy, tree=spec.tree, num_workers=spec.num_workers,
                             cpus_per_worker=spec.cpus_per_worker,
                             gpus_per_worker=spec.gpus_per_worker,
                             worker_timeout_s=spec.worker_timeout_s,
                             reuse_workers=spec.reuse_workers,
                             strategy_kwargs=spec.strategy_kwargs)


def _write_text(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(text)


def fit_as_data(trainer: Any, model: Any, datamodule: Any, ckpt_path: Optional[str]) -> None:
    """Train, continuing from ``ckpt_path`` if given, loaded as data only (``weights_only``).

    A checkpoint in a results directory is a file anyone with write access could have
    replaced; unpickling it in full would run whatever it names.
    """
    trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path,
                weights_only=True if ckpt_path else None)


@contextlib.contextmanager
def _restored_checkpoint(filename: Optional[str]):
    """The path of the Lightning checkpoint Tune restarts this trial from, or None."""
    checkpoint = tune.get_checkpoint()
    if checkpoint is None or filename is None:
        yield None
        return
    with checkpoint.as_directory() as directory:
        path = os.path.join(directory, filename)
        yield path if os.path.exists(path) else None
