"""The entry point for LightningCLI projects: a search over the project's own config.

:func:`tune_lightning_cli` reads the config (:mod:`lightning_tune.lightning_cli`) and runs
:func:`~lightning_tune.api.tune_lightning` with it, so everything a search of a model class
offers (strategies, searchers, schedulers, resume, results) applies unchanged.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Mapping, Optional, Union

from lightning_tune.api import tune_lightning
from lightning_tune.errors import InvalidArgumentError
from lightning_tune.lightning_cli import LightningCliConfig
from lightning_tune.results import TuneLightningResult
from lightning_tune.spaces import SearchSpace


def tune_lightning_cli(
    cli_config: Union[str, os.PathLike, Mapping[str, Any]],
    space: Union[Dict[str, Any], str, SearchSpace],
    *,
    model_class: Optional[Union[type, str]] = None,
    datamodule_class: Optional[Union[type, str]] = None,
    cli_class: Optional[Union[type, str]] = None,
    max_epochs: Optional[int] = None,
    **search: Any,
) -> TuneLightningResult:
    """Search a LightningCLI project's config: the space's keys are dotted paths into it.

    ``cli_config``: the project's config file (what ``python main.py fit --config`` takes) or
    its sections as a dict. Space keys such as ``model.init_args.lr``,
    ``model.init_args.encoder.init_args.depth``, ``data.init_args.batch_size``,
    ``trainer.accumulate_grad_batches`` or ``optimizer.init_args.weight_decay`` must exist in
    the config resolved with its classes' defaults. Each trial builds model, datamodule,
    optimizer, scheduler and trainer settings as the project's LightningCLI does
    (``cli_class``, when main.py subclasses it; ``model_class`` / ``datamodule_class`` when
    main.py passes classes and the config names none), trains with the search's strategy, and
    writes its resolved config to ``config.yaml`` in its folder. ``max_epochs`` defaults to
    the config's ``trainer.max_epochs`` (else 10). ``search``: any other
    :func:`tune_lightning` argument (``strategy``, ``num_workers``, ``num_samples``, ...).
    Keys and values are checked before Ray starts.
    """
    if "datamodule" in search or "model_cls" in search:
        raise InvalidArgumentError(
            "tune_lightning_cli takes the model and datamodule from the config's model: and "
            "data: sections; leave model_cls and datamodule out.")
    cli = LightningCliConfig.load(cli_config, model_class=model_class,
                                  datamodule_class=datamodule_class, cli_class=cli_class)
    epochs = max_epochs if max_epochs is not None else (cli.max_epochs or 10)
    return tune_lightning(cli.model_cls, space, max_epochs=epochs, lightning_cli=cli, **search)
