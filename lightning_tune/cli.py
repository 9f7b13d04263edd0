"""The ``lightning-tune`` command: scripts and cluster head nodes drive searches from a shell.

    lightning-tune run search.yaml             a search described in a YAML file
    lightning-tune report ~/ray_results/NAME   its trials, best trial and plots
    lightning-tune resume ~/ray_results/NAME   continue it after an interruption

Torch, Lightning and Ray are imported only once a command runs. Input the user can fix (a bad
file, key or value, a folder that is no experiment: any :class:`LightningTuneError`) ends with
one line on stderr and exit status 2, as argparse does for bad arguments; a search whose
trials all failed exits 1; anything else is a bug and shows its traceback.
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
from typing import Any, Dict, List, Mapping, Optional

# tune_lightning arguments a YAML file cannot set, and what to do instead
_NOT_IN_YAML = {
    "callbacks": "callbacks are Python objects, which YAML cannot hold; call tune_lightning "
                 "from Python to pass them",
    "datamodule": None,  # set by the top-level ``datamodule`` import path
    "lightning_cli": "give cli_config: (the LightningCLI config file, or its sections) instead",
}
# keys of a run file that searches a LightningCLI config (cli_config:) instead of model:
_CLI_CONFIG_KEYS = ("cli_config", "model_class", "datamodule_class", "cli_class")
from lightning_tune.errors import InvalidArgumentError, LightningTuneError


class _UsageError(LightningTuneError):
    """Input the user can fix, found by the command itself: one line, exit status 2."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lightning-tune", description="Ray Tune searches over PyTorch Lightning models.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run", help="run a search described in a YAML file",
        description="Run a tune_lightning search described in a YAML file, then print its "
                    "trials and best config and write its plots into the experiment folder. "
                    "The file names `model` (an import path, package.module:Class), optionally "
                    "`datamodule` (likewise), or instead `cli_config` (a LightningCLI config "
                    "file, or its sections inline, whose dotted keys the space searches), "
                    "`space` (a curated space name from "
                    "search_spaces, a list of them, a YAML file, or the parameters inline) and "
                    "any other tune_lightning argument with a plain value (metric, mode, "
                    "num_samples, max_epochs, strategy, strategy_kwargs, scheduler, "
                    "trainer_kwargs, loggers, time_budget_s, stop, warm_start, ...). Paths in "
                    "the file (space, storage_path, warm_start, ...) are relative to it. Example: "
                    "lightning_tune/examples/digits_search.yaml.")
    run.add_argument("config", metavar="CONFIG.yaml", help="the search, as a YAML file")
    run.add_argument("--name", help="the experiment's name (overrides `name` in the file)")
    run.add_argument("--storage-path", metavar="DIR",
                     help="where experiments are written (overrides `storage_path` in the file; "
                          "default ~/ray_results)")
    run.add_argument("--num-samples", metavar="N", type=int,
                     help="how many trials to sample (overrides `num_samples` in the file)")
    run.set_defaults(handler=_run)

    report = commands.add_parser(
        "report", help="show the trials and plots of an experiment",
        description="Read a finished or interrupted tune_lightning experiment without running "
                    "anything: print a table of its trials, its best trial and which "
                    "hyperparameters mattered (fANOVA), and write optimisation_history.png, "
                    "parallel_coordinates.png, learning_curves.png and importance.png.")
    report.add_argument("path", metavar="PATH",
                        help="the experiment folder (storage_path/name)")
    report.add_argument("--out", metavar="DIR",
                        help="write the plots here instead of into the experiment folder")
    report.set_defaults(handler=_report)

    resume = commands.add_parser(
        "resume", help="continue an interrupted experiment from its directory",
        description="Continue an interrupted tune_lightning experiment. Finished trials are not "
                    "run again; running ones continue from their last checkpoint.")
    resume.add_argument("path", metavar="PATH",
                        help="the experiment directory (storage_path/name)")
    resume.add_argument("--resume-errored", action="store_true",
                        help="also retry trials that had failed")
    resume.add_argument("--time-budget-s", metavar="SECONDS", type=float,
                        help="end the continued search after this long; resume again to go on")
    resume.set_defaults(handler=_resume)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    from lightning_tune.errors import AllTrialsFailedError, ExperimentExistsError

    args = _parser().parse_args(argv)
    try:
        return args.handler(args)
    except AllTrialsFailedError as error:
        print(f"lightning-tune {args.command}: {error}", file=sys.stderr)
        return 1
    except ExperimentExistsError as error:
        print(f"lightning-tune {args.command}: {' '.join(str(error).split())} From the shell: "
              "lightning-tune resume PATH, or run again with --name NEW_NAME.", file=sys.stderr)
        return 2
    except LightningTuneError as error:
        one_line = " ".join(str(error).split())
        print(f"lightning-tune {args.command}: {one_line}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    from lightning_tune.api import tune_lightning

    arguments = read_run_config(args.config)
    overrides = {"name": args.name, "storage_path": args.storage_path,
                 "num_samples": args.num_samples}
    arguments.update({key: value for key, value in overrides.items() if value is not None})
    space = arguments.pop("space")
    if "cli_config" in arguments:
        from lightning_tune.lightning_cli_search import tune_lightning_cli

        result = tune_lightning_cli(arguments.pop("cli_config"), space, **arguments)
    else:
        result = tune_lightning(arguments.pop("model_cls"), space, **arguments)
    print(_trials_table(result))
    if arguments.get("verbose", 1) < 1:  # else the search printed its summary itself
        _print_best(result)
    _print_plots(result.save_plots(result.experiment_path))
    return 0


def _report(args: argparse.Namespace) -> int:
    from lightning_tune.api import load_result
    from lightning_tune.importance import importance_lines

    result = load_result(args.path)
    print(_trials_table(result))
    _print_best(result)
    print("\n".join(importance_lines(result)))
    directory = args.out or result.experiment_path
    paths = result.save_plots(directory)
    try:
        result.plot_importance(path=os.path.join(directory, "importance.png"))
        paths["importance"] = os.path.join(directory, "importance.png")
    except InvalidArgumentError:  # too few trials: the lines above said so
        pass
    _print_plots(paths)
    return 0


def _resume(args: argparse.Namespace) -> int:
    from lightning_tune.api import resume

    result = resume(args.path, resume_errored=args.resume_errored,
                    time_budget_s=args.time_budget_s)
    _print_best(result)
    return 0


def yaml_keys() -> List[str]:
    """The keys a run file may hold: ``model``, ``datamodule``, ``space`` and every plain
    keyword argument of tune_lightning (read from its signature, so new ones join by themselves).
    """
    from lightning_tune.api import tune_lightning

    parameters = inspect.signature(tune_lightning).parameters.values()
    return ["model", "datamodule", "space", *_CLI_CONFIG_KEYS] + [
        parameter.name for parameter in parameters
        if parameter.kind is parameter.KEYWORD_ONLY and parameter.name not in _NOT_IN_YAML]


def read_run_config(path: str) -> Dict[str, Any]:
    """tune_lightning's arguments from a run file: ``model_cls``, ``space`` and the rest."""
    import yaml

    if not os.path.isfile(path):
        raise _UsageError(f"{path}: no such file. Pass a YAML file describing the search, e.g. "
                          "lightning_tune/examples/digits_search.yaml.")
    with open(path) as handle:
        try:
            data = yaml.safe_load(handle)
        except yaml.YAMLError as error:
            raise _UsageError(f"{path} is not valid YAML: {error}") from error
    if not isinstance(data, Mapping):
        raise _UsageError(f"{path} must hold a mapping of settings (model: ..., space: ..., "
                          f"num_samples: ...), got {type(data).__name__}.")
    allowed = yaml_keys()
    for key in data:
        if key in _NOT_IN_YAML and _NOT_IN_YAML[key]:
            raise _UsageError(f"{path}: {key!r} cannot be set in a file: {_NOT_IN_YAML[key]}.")
        if key not in allowed:
            raise _UsageError(f"{path}: unknown key {key!r}. Allowed keys: {', '.join(allowed)}.")
    folder = os.path.dirname(os.path.abspath(path))
    arguments = {key: value for key, value in data.items()
                 if key not in ("model", "datamodule", "space", "cli_config")}
    if "cli_config" in data:
        arguments["cli_config"] = _cli_config(path, data, folder)
    elif "model" not in data:
        raise _UsageError(f"{path}: missing `model`, the LightningModule to search over, as an "
                          "import path (model: package.module:Class), or `cli_config`, a "
                          "LightningCLI config whose dotted keys the space searches.")
    else:
        given = [key for key in _CLI_CONFIG_KEYS if key in data]
        if given:
            raise _UsageError(f"{path}: {', '.join(given)} belong(s) to a search of a "
                              "LightningCLI config: add cli_config: config.yaml, or leave "
                              "them out.")
        arguments["model_cls"] = _import(path, "model", data["model"])
        if data.get("datamodule") is not None:
            arguments["datamodule"] = _import(path, "datamodule", data["datamodule"])
    arguments["space"] = _space(path, data.get("space"), folder)
    for key in ("storage_path", "warm_start"):  # folders, relative to the file
        if isinstance(arguments.get(key), str):
            arguments[key] = os.path.join(folder, os.path.expanduser(arguments[key]))
    return arguments


def _cli_config(path: str, data: Mapping[str, Any], folder: str) -> Any:
    """The LightningCLI config a run file names: a file (relative to it) or the sections."""
    both = [key for key in ("model", "datamodule") if key in data]
    if both:
        raise _UsageError(f"{path}: a run file searches either a model class (model:) or a "
                          f"LightningCLI config (cli_config:), not both; remove "
                          f"{' and '.join(both)} (the config's model: and data: sections "
                          "name the classes).")
    value = data["cli_config"]
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, str):
        return os.path.join(folder, os.path.expanduser(value))
    raise _UsageError(f"{path}: cli_config must be the path of a LightningCLI config file "
                      f"(relative to this file) or its sections inline, got {value!r}.")


def _import(path: str, key: str, value: Any) -> type:
    from lightning_tune.record import import_class

    if not isinstance(value, str) or ":" not in value:
        raise _UsageError(f"{path}: {key} must be an import path 'package.module:Class', got "
                          f"{value!r}.")
    try:
        return import_class(value, f"{key} class")
    except ImportError as error:  # the recorded-class error, an ImportError
        cause = f" ({error.__cause__})" if error.__cause__ else ""
        raise _UsageError(f"{path}: cannot import {key} {value!r}{cause}. Define the class in "
                          "a module that Python can import (install its package, or add its "
                          "folder to PYTHONPATH).") from error


def _space(path: str, value: Any, folder: str) -> Any:
    """A space as tune_lightning takes it: a curated name, a file path or the parameters."""
    from lightning_tune.spaces import curated_names, load_curated

    curated = curated_names()
    what = (f"a curated space name ({', '.join(curated)}), a list of them, a YAML file "
            "(relative to this file) or the parameters as a mapping")
    if value is None:
        raise _UsageError(f"{path}: missing `space`: give {what}.")
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, list) and value and all(isinstance(name, str) for name in value):
        unknown = [name for name in value if name not in curated]
        if unknown:
            raise _UsageError(f"{path}: space: no curated space named {unknown}; available: "
                              f"{', '.join(curated)}.")
        return load_curated(*value)  # merged in order, a later one overriding
    if isinstance(value, str):
        if value in curated:
            return value
        file = os.path.join(folder, os.path.expanduser(value))
        if os.path.isfile(file):
            return file
        raise _UsageError(f"{path}: space {value!r} is neither a curated space nor a file "
                          f"(looked for {file}); give {what}.")
    raise _UsageError(f"{path}: space must be {what}, got {value!r}.")


def _trials_table(result: Any) -> str:
    """One readable row per trial: id, status, searched values, best metric, epochs."""
    frame = result.dataframe
    best = result.best_score_by_trial()
    columns = [c for c in ["trial_id", "status", *result.searched] if c in frame]
    table = frame[columns].copy()
    table[f"best {result.metric}"] = [best.get(str(t)) for t in frame["trial_id"]]
    if "training_iteration" in frame:
        table["epochs"] = frame["training_iteration"]
    table = table.sort_values("trial_id")
    return table.to_string(index=False, na_rep="-", float_format=lambda value: f"{value:.4g}")


def _print_best(result: Any) -> None:
    print(result.summary())


def _print_plots(paths: Mapping[str, str]) -> None:
    for name, path in paths.items():
        print(f"{name.replace('_', ' ')}: {path}")


if __name__ == "__main__":
    sys.exit(main())
