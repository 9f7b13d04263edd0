"""Searching a LightningCLI config: the space's keys are dotted paths into its sections.

A LightningCLI project keeps its settings in a config with ``model:``, ``data:``, ``trainer:``,
``optimizer:`` and ``lr_scheduler:`` sections (classes given by ``class_path`` and
``init_args``). :class:`LightningCliConfig` holds such a config and reads it the way the
project's own ``LightningCLI`` does (jsonargparse, class paths, links, the automatic optimizer
and scheduler sections): before Ray starts, to check the space's keys and values; in each
trial, to build that trial's model, datamodule and trainer settings, and the resolved config
that the trial keeps as ``config.yaml`` so ``python main.py fit --config`` re-runs it alone.
"""

from __future__ import annotations

import copy
import functools
import importlib
import os
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional

import yaml

from lightning_tune.errors import InvalidArgumentError, InvalidTypeError
from lightning_tune.trial_cli import (OWNED_TRAINER_SETTINGS, ParsedConfig, dump_config,
                                      quiet_args_warning, trial_cli_class)

CONFIG_FILENAME = "config.yaml"
_SECTIONS = ("seed_everything", "trainer", "model", "data", "optimizer", "lr_scheduler")


@dataclass(frozen=True)
class CliTrial:
    """What one trial's config builds: the objects, the trainer settings and the config text."""

    model: Any
    datamodule: Any
    trainer_settings: Dict[str, Any]
    config_text: str


@dataclass(frozen=True)
class LightningCliConfig:
    """A LightningCLI config to search, read as the project's ``LightningCLI`` reads it.

    ``sections``: the config (``model:``, ``data:``, ``trainer:``, ...). ``model_class`` /
    ``datamodule_class`` (``"module:Class"``): the classes ``main.py`` gives LightningCLI
    when its config names none by ``class_path``. ``cli_class``: the project's LightningCLI
    subclass, when it adds arguments or links (default: Lightning's own).
    """

    sections: Mapping[str, Any]
    model_class: Optional[str] = None
    datamodule_class: Optional[str] = None
    cli_class: Optional[str] = None
    source: str = "the LightningCLI config"

    # --- building one ---------------------------------------------------------------------
    @classmethod
    def load(cls, cli_config: Any, *, model_class: Any = None, datamodule_class: Any = None,
             cli_class: Any = None) -> "LightningCliConfig":
        """From a YAML file's path or the sections as a mapping; checked here, before Ray."""
        if isinstance(cli_config, LightningCliConfig):
            return cli_config
        source = "the LightningCLI config"
        if isinstance(cli_config, (str, os.PathLike)):
            path = os.path.abspath(os.path.expanduser(os.fspath(cli_config)))
            if not os.path.isfile(path):
                raise InvalidArgumentError(
                    f"cli_config {os.fspath(cli_config)!r}: no such file. Give the path of the "
                    "project's LightningCLI config (the file `python main.py fit --config` "
                    "takes) or its sections as a dict.")
            with open(path) as handle:
                try:
                    cli_config = yaml.safe_load(handle)
                except yaml.YAMLError as error:
                    raise InvalidArgumentError(f"{path} is not valid YAML: {error}") from error
            source = path
        if not isinstance(cli_config, Mapping):
            raise InvalidTypeError(
                f"{source} must be a mapping of LightningCLI sections (model:, data:, trainer:, "
                f"...), got {type(cli_config).__name__}.")
        unknown = [key for key in cli_config if key not in _SECTIONS]
        if unknown and cli_class is None:  # a project's own CLI class may add sections
            raise InvalidArgumentError(
                f"{source} has section(s) {unknown} that LightningCLI's fit config does not "
                f"have; its sections are {', '.join(_SECTIONS)}. If main.py's own LightningCLI "
                "subclass adds them, pass it as cli_class='package.module:Class'.")
        config = cls(sections=copy.deepcopy(dict(cli_config)),
                     model_class=_path_or_none(model_class, "model_class"),
                     datamodule_class=_path_or_none(datamodule_class, "datamodule_class"),
                     cli_class=_path_or_none(cli_class, "cli_class"), source=source)
        config._check_classes()
        config.known_keys()  # parses it: a value LightningCLI rejects is reported now
        return config

    def _check_classes(self) -> None:
        model = self.sections.get("model")
        if self.model_class is None and not _names_class(model):
            raise InvalidArgumentError(
                f"{self.source}: its model section names no class_path, so main.py must give "
                "LightningCLI the model class: pass model_class='package.module:Class' (as "
                "main.py passes it), or write model: {class_path: ..., init_args: {...}}.")
        data = self.sections.get("data")
        if data and self.datamodule_class is None and not _names_class(data):
            raise InvalidArgumentError(
                f"{self.source}: its data section names no class_path: pass "
                "datamodule_class='package.module:Class' (as main.py gives it to LightningCLI), "
                "or write data: {class_path: ..., init_args: {...}}.")
        self.model_cls  # imports it: a wrong path is reported now

    # --- what it names --------------------------------------------------------------------
    @property
    def model_cls(self) -> type:
        """The LightningModule class the config trains."""
        if self.model_class is not None:
            return _import_path(self.model_class, "model_class")
        return _import_path(self.sections["model"]["class_path"], "model class_path")

    @property
    def max_epochs(self) -> Optional[int]:
        """The config's own ``trainer.max_epochs``, if it sets a positive one."""
        value = (self.sections.get("trainer") or {}).get("max_epochs")
        return value if isinstance(value, int) and value > 0 else None

    def known_keys(self) -> List[str]:
        """Every dotted key of the resolved config (defaults included) a space may set."""
        return list(self._known_keys)

    @functools.cached_property
    def _known_keys(self) -> List[str]:
        return sorted(_dotted_keys(yaml.safe_load(self._parse({}).dump())))

    # --- checks before Ray starts ---------------------------------------------------------
    def check_keys(self, keys: Iterable[str]) -> None:
        """Refuse keys the config does not have and trainer settings the toolkit owns."""
        known = set(self.known_keys())
        for key in keys:
            section, _, setting = key.partition(".")
            if section == "trainer" and setting in OWNED_TRAINER_SETTINGS:
                raise InvalidArgumentError(
                    f"Search space key {key!r}: every trial's {setting} is set by the toolkit; "
                    f"use {OWNED_TRAINER_SETTINGS[setting]} instead.")
            if key not in known:
                raise InvalidArgumentError(
                    f"Search space key {key!r} is not in {self.source} nor a parameter of the "
                    f"class it names. Keys there: {_nearby(key, known)}.")

    def check_values(self, candidates: Mapping[str, List[Any]]) -> None:
        """Parse the config with each candidate value of each key, as LightningCLI would."""
        first = {key: values[0] for key, values in candidates.items() if values}
        self._parse(first, what="the space's first values")
        for key, values in candidates.items():
            for value in values[1:]:
                self._parse({**first, key: value}, what=f"{key}={value!r}")

    # --- what a trial builds --------------------------------------------------------------
    def with_values(self, values: Mapping[str, Any]) -> Dict[str, Any]:
        """The config with each dotted key of ``values`` set (intermediate sections made)."""
        config = copy.deepcopy(dict(self.sections))
        for key, value in values.items():
            parts = key.split(".")
            node = config
            for part in parts[:-1]:
                if not isinstance(node.get(part), dict):
                    node[part] = {}
                node = node[part]
            node[parts[-1]] = value
        return config

    def build_model(self, values: Mapping[str, Any]) -> Any:
        """The model a trial with ``values`` trained (its config's seed leaves this process
        as it was: this is the user's process, not a trial's)."""
        from lightning_tune.process_state import global_state_kept

        with global_state_kept():
            return self.trial(values).model

    def trial(self, values: Mapping[str, Any], max_epochs: Optional[int] = None) -> CliTrial:
        """One trial: model, datamodule and trainer settings, built as LightningCLI builds them.

        The optimizer and scheduler sections become the model's ``configure_optimizers``,
        which builds them on each rank's own parameters (after DDP or FSDP wrapped the model),
        not once in this process as LightningCLI does before fit.
        """
        values = dict(values)
        if max_epochs is not None:
            values["trainer.max_epochs"] = max_epochs
        cli = self._cli(values, parse_only=False)
        return CliTrial(model=cli.model, datamodule=cli.datamodule,
                        trainer_settings=cli.trainer_settings,
                        config_text=dump_config(cli.parser, cli.config))

    # --- the record ----------------------------------------------------------------------
    def to_record(self) -> Dict[str, Any]:
        return {"sections": copy.deepcopy(dict(self.sections)), "model_class": self.model_class,
                "datamodule_class": self.datamodule_class, "cli_class": self.cli_class,
                "source": self.source}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> "LightningCliConfig":
        return cls(**{key: record.get(key) for key in
                      ("sections", "model_class", "datamodule_class", "cli_class")},
                   source=record.get("source") or "the LightningCLI config")

    # --- LightningCLI ----------------------------------------------------------------------
    def _cli_base(self) -> type:
        if self.cli_class is not None:
            return _import_path(self.cli_class, "cli_class")
        from lightning_tune.lightning_trees import tree_of

        return importlib.import_module(f"{tree_of(self.model_cls)}.cli").LightningCLI

    def _cli(self, values: Mapping[str, Any], parse_only: bool) -> Any:
        base = self._cli_base()
        cli_class = trial_cli_class(base)
        model_class = _import_path(self.model_class, "model_class") if self.model_class \
            else None
        datamodule_class = _import_path(self.datamodule_class, "datamodule_class") \
            if self.datamodule_class else None
        config = self.with_values(values)
        with quiet_args_warning():
            return cli_class(model_class, datamodule_class, save_config_callback=None,
                             subclass_mode_model=model_class is None,
                             subclass_mode_data=datamodule_class is None,
                             parser_kwargs={"exit_on_error": False}, args=config, run=False,
                             parse_only=parse_only,
                             given_trainer_settings=list(config.get("trainer") or {}))

    def _parse(self, values: Mapping[str, Any], what: str = "it") -> ParsedConfig:
        from jsonargparse import ArgumentError

        try:
            self._cli(values, parse_only=True)
        except ParsedConfig as parsed:
            return parsed
        except ArgumentError as error:
            raise InvalidArgumentError(
                f"LightningCLI rejects {self.source} with {what}: "
                f"{' '.join(str(error).split())}") from error
        raise AssertionError("the trial CLI did not stop after parsing")  # pragma: no cover


def _names_class(section: Any) -> bool:
    return isinstance(section, Mapping) and isinstance(section.get("class_path"), str)


def _dotted_keys(tree: Any, prefix: str = "") -> List[str]:
    keys = []
    if isinstance(tree, Mapping):
        for key, value in tree.items():
            path = f"{prefix}{key}"
            keys.append(path)
            keys += _dotted_keys(value, path + ".")
    return keys


def _nearby(key: str, known: Iterable[str]) -> str:
    """The known keys under the longest prefix ``key`` shares with them."""
    parts = key.split(".")
    for length in range(len(parts) - 1, -1, -1):
        prefix = ".".join(parts[:length])
        under = sorted(k for k in known if (k.startswith(prefix + ".") if prefix else True)
                       and k.count(".") == length)
        if under:
            return ", ".join(under)
    return ", ".join(sorted(known))


def _path_or_none(value: Any, role: str) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, type):
        return f"{value.__module__}:{value.__qualname__}"
    if isinstance(value, str) and value:
        return value
    raise InvalidTypeError(f"{role} must be a class or an import path 'package.module:Class', "
                           f"got {value!r}.")


def _import_path(path: str, role: str) -> Any:
    """A class named ``package.module:Class`` or, as LightningCLI names them, ``package.module.Class``."""
    from lightning_tune.record import import_class

    if ":" not in path:
        module, _, name = path.rpartition(".")
        path = f"{module}:{name}"
    try:
        return import_class(path, role)
    except ImportError as error:
        raise InvalidArgumentError(f"{role} {path!r} cannot be imported: {error}") from error
