"""A LightningCLI that builds one trial instead of running a subcommand.

The project's own LightningCLI class (Lightning's, or main.py's subclass with its arguments,
links and ``configure_optimizers``) is subclassed so that it parses a trial's config and
builds model and datamodule exactly as it would, but leaves the Trainer to the toolkit: it
hands back the trainer settings the config gives, minus those the toolkit owns. The
optimizer and scheduler sections are built on each training rank, when Lightning asks.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from typing import Any, Dict, Iterable, Iterator, Mapping, Optional

# Trainer settings the toolkit sets for every trial, and the search argument that sets them.
OWNED_TRAINER_SETTINGS = {
    "strategy": "the search's strategy= (and strategy_kwargs=)",
    "devices": "num_workers= (and gpus_per_worker=)",
    "num_nodes": "num_workers=",
    "accelerator": "gpus_per_worker=",
    "max_epochs": "the search's max_epochs= (the epochs its schedulers count)",
}
_ARGS_WARNING = "LightningCLI's args parameter is intended"


@contextlib.contextmanager
def quiet_args_warning() -> Iterator[None]:
    """LightningCLI warns when given ``args`` while ``sys.argv`` has arguments (pytest's, a Ray
    worker's): a config given as data is what a trial means to parse."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_ARGS_WARNING)
        yield


class ParsedConfig(Exception):
    """Stops a trial CLI right after parsing (a check before Ray starts needs no objects)."""

    def __init__(self, parser: Any, config: Any) -> None:
        super().__init__("parsed")
        self.parser, self.config = parser, config

    def dump(self) -> str:
        return dump_config(self.parser, self.config)


def dump_config(parser: Any, config: Any) -> str:
    """The config as LightningCLI's SaveConfigCallback writes it (defaults and links shown)."""
    return parser.dump(config, skip_none=False, skip_link_targets=False)


@functools.lru_cache(maxsize=None)
def trial_cli_class(base: type) -> type:
    """``base`` (the project's LightningCLI class), made to build a trial instead of running."""

    class TrialCLI(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, parse_only: bool = False,
                     given_trainer_settings: Iterable[str] = (), **kwargs: Any) -> None:
            self._parse_only = parse_only
            self._given_trainer_settings = list(given_trainer_settings)
            super().__init__(*args, **kwargs)

        def parse_arguments(self, parser: Any, args: Any) -> None:
            super().parse_arguments(parser, args)
            if self._parse_only:
                raise ParsedConfig(parser, self.config)

        def instantiate_classes(self) -> None:
            init = self.parser.instantiate_classes(self.config)
            self.config_init = init
            self.model = init.get("model")
            self.datamodule = init.get("data")
            self.trainer = None
            optimizer, scheduler = init.get("optimizer"), init.get("lr_scheduler")
            if self.auto_configure_optimizers and optimizer:
                self.model.configure_optimizers = functools.partial(
                    configure_optimizers, self.model, _plain(optimizer), _plain(scheduler),
                    type(self).configure_optimizers)
            trainer = init.get("trainer") or {}
            # what the config gives (LightningCLI's defaults are Lightning's), objects built
            self.trainer_settings = {key: trainer[key] for key in self._given_trainer_settings
                                     if key not in OWNED_TRAINER_SETTINGS}
            extra = [init.get(key) for key in self.parser.callback_keys if init.get(key)]
            if extra:
                self.trainer_settings["callbacks"] = list(
                    self.trainer_settings.get("callbacks") or []) + extra

    TrialCLI.__name__ = TrialCLI.__qualname__ = f"Trial{base.__name__}"
    return TrialCLI


def configure_optimizers(module: Any, optimizer: Mapping[str, Any],
                         scheduler: Optional[Mapping[str, Any]], combine: Any) -> Any:
    """A LightningCLI ``optimizer:`` (and ``lr_scheduler:``) section, built on ``module``'s
    parameters when Lightning asks, on the rank that trains (picklable, unlike a bound method).
    """
    from lightning.pytorch.cli import instantiate_class

    built = instantiate_class(module.parameters(), dict(optimizer))
    schedule = instantiate_class(built, dict(scheduler)) if scheduler else None
    return combine(module, built, schedule)


def _plain(section: Any) -> Optional[Dict[str, Any]]:
    if section is None:
        return None
    return section.as_dict() if hasattr(section, "as_dict") else dict(section)
