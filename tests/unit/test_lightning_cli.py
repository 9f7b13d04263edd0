"""Reading a LightningCLI config as the project's LightningCLI does, without Ray."""

import copy
import os
import pickle

import cloudpickle
import pytest
import torch
import yaml

from lightning_tune import tune_lightning_cli
from lightning_tune.errors import InvalidArgumentError, InvalidTypeError
from lightning_tune.examples.lightning_cli.model import ConvEncoder, DigitsModel, MLPEncoder
from lightning_tune.lightning_cli import LightningCliConfig
from lightning_tune.spaces import load_space
from lightning_tune.spec import TrialSpec
from tests.conftest import ROOT

pytestmark = pytest.mark.timeout(120)

EXAMPLE = os.path.join(ROOT, "lightning_tune", "examples", "lightning_cli")
CONFIG = os.path.join(EXAMPLE, "config.yaml")
MODEL = "lightning_tune.examples.lightning_cli.model"


@pytest.fixture(scope="module")
def example():
    return LightningCliConfig.load(CONFIG)


@pytest.fixture(autouse=True)
def seed_variables_left_alone():
    """A trial seeds its process (seed_everything); these tests must not leave that behind."""
    yield
    for name in ("PL_GLOBAL_SEED", "PL_SEED_WORKERS"):
        os.environ.pop(name, None)


def test_building_the_best_model_leaves_the_users_process_unseeded(example):
    before = torch.random.get_rng_state()
    model = example.build_model({"model.init_args.encoder.init_args.width": 16})
    assert model.encoder.out_features == 16
    assert "PL_GLOBAL_SEED" not in os.environ  # Ray workers started later would inherit it
    assert torch.equal(torch.random.get_rng_state(), before)


def sections():
    with open(CONFIG) as handle:
        return yaml.safe_load(handle)


def test_keys_of_nested_classes_and_of_lightning_cli_sections_are_known(example):
    known = set(example.known_keys())
    for key in ["model.init_args.encoder.init_args.width", "model.init_args.label_smoothing",
                "data.init_args.batch_size", "trainer.accumulate_grad_batches",
                "optimizer.init_args.weight_decay", "seed_everything",
                # a default of the class, not written in the file
                "model.init_args.encoder.init_args.dropout"]:
        assert key in known
    example.check_keys(["model.init_args.encoder.init_args.depth", "optimizer.init_args.lr"])


def test_an_unknown_key_is_named_with_the_keys_beside_it(example):
    with pytest.raises(InvalidArgumentError) as error:
        example.check_keys(["model.init_args.encoder.init_args.widht"])
    message = str(error.value)
    assert "'model.init_args.encoder.init_args.widht'" in message
    assert "model.init_args.encoder.init_args.width" in message
    assert "model.init_args.encoder.init_args.depth" in message
    with pytest.raises(InvalidArgumentError, match="optimizer.init_args.lr"):
        example.check_keys(["optimizer.init_args.learning_rate"])


@pytest.mark.parametrize("setting,instead", [("strategy", "strategy="), ("devices", "num_workers="),
                                             ("num_nodes", "num_workers="),
                                             ("max_epochs", "max_epochs=")])
def test_trainer_settings_the_toolkit_owns_are_refused(example, setting, instead):
    with pytest.raises(InvalidArgumentError) as error:
        example.check_keys([f"trainer.{setting}"])
    assert f"'trainer.{setting}'" in str(error.value) and instead in str(error.value)


def test_a_value_of_the_wrong_type_is_refused_with_its_key(example):
    example.check_values({"data.init_args.batch_size": [32, 64],
                          "model.init_args.encoder.init_args.width": [16, 128]})
    with pytest.raises(InvalidArgumentError) as error:
        example.check_values({"data.init_args.batch_size": [32, "large"]})
    message = str(error.value)
    assert "data.init_args.batch_size='large'" in message and "batch_size" in message


def test_a_trial_builds_what_its_values_say(example):
    trial = example.trial({"model.init_args.encoder.init_args.width": 32,
                           "optimizer.init_args.lr": 0.02,
                           "trainer.accumulate_grad_batches": 2}, max_epochs=3)
    assert isinstance(trial.model, DigitsModel) and isinstance(trial.model.encoder, MLPEncoder)
    assert trial.model.encoder.out_features == 32
    assert trial.datamodule.batch_size == 64
    # the config's own trainer settings, not those the toolkit owns (accelerator, max_epochs)
    assert trial.trainer_settings == {"enable_progress_bar": False, "accumulate_grad_batches": 2}
    optimizer = trial.model.configure_optimizers()
    assert isinstance(optimizer, torch.optim.AdamW)
    assert optimizer.param_groups[0]["lr"] == 0.02
    written = yaml.safe_load(trial.config_text)
    assert written["trainer"]["max_epochs"] == 3
    assert written["model"]["init_args"]["encoder"]["init_args"] == {
        "depth": 1, "width": 32, "dropout": 0.0}
    assert written["optimizer"]["init_args"]["lr"] == 0.02
    assert written["seed_everything"] == 0


def test_a_class_path_is_searchable_too(example):
    encoder = {"class_path": f"{MODEL}.ConvEncoder", "init_args": {"channels": 4}}
    example.check_values({"model.init_args.encoder": [encoder]})
    trial = example.trial({"model.init_args.encoder": encoder})
    assert isinstance(trial.model.encoder, ConvEncoder)
    assert trial.model.encoder.out_features == 4 * 16


def test_the_optimizer_is_built_on_the_parameters_of_the_model_a_worker_unpickles(example):
    model = example.trial({"optimizer.init_args.lr": 0.01}).model
    copy_on_worker = pickle.loads(cloudpickle.dumps(model))
    optimizer = copy_on_worker.configure_optimizers()
    built_on = {id(parameter) for group in optimizer.param_groups for parameter in group["params"]}
    assert built_on == {id(parameter) for parameter in copy_on_worker.parameters()}
    assert optimizer.param_groups[0]["lr"] == 0.01


def test_a_scheduler_section_becomes_part_of_configure_optimizers():
    config = sections()
    config["lr_scheduler"] = {"class_path": "torch.optim.lr_scheduler.StepLR",
                              "init_args": {"step_size": 2, "gamma": 0.5}}
    trial = LightningCliConfig.load(config).trial({"lr_scheduler.init_args.gamma": 0.25})
    optimizers, schedulers = trial.model.configure_optimizers()
    assert isinstance(schedulers[0], torch.optim.lr_scheduler.StepLR)
    assert schedulers[0].gamma == 0.25 and schedulers[0].optimizer is optimizers[0]


def test_classes_main_py_passes_when_the_config_names_none():
    flat = {"model": {"encoder": {"class_path": f"{MODEL}.MLPEncoder"}, "label_smoothing": 0.1},
            "data": {"batch_size": 16},
            "optimizer": {"class_path": "torch.optim.SGD", "init_args": {"lr": 0.1}}}
    with pytest.raises(InvalidArgumentError, match="pass model_class="):
        LightningCliConfig.load(flat)
    with pytest.raises(InvalidArgumentError, match="pass datamodule_class="):
        LightningCliConfig.load(flat, model_class=DigitsModel)
    config = LightningCliConfig.load(
        flat, model_class=DigitsModel,
        datamodule_class="lightning_tune.examples.digits:DigitsDataModule")
    assert "model.label_smoothing" in config.known_keys()
    trial = config.trial({"model.label_smoothing": 0.2, "data.batch_size": 8})
    assert trial.model.label_smoothing == 0.2 and trial.datamodule.batch_size == 8


def test_a_projects_own_cli_class_reads_its_own_sections_and_links():
    config = dict(sections(), run_tag="sweep-1")
    del config["model"]["init_args"]["label_smoothing"]  # a link target: set by the link
    with pytest.raises(InvalidArgumentError, match="cli_class"):
        LightningCliConfig.load(config)
    cli = LightningCliConfig.load(config, cli_class="tests.models:TaggedCLI")
    assert {"run_tag", "smoothing"} <= set(cli.known_keys())
    cli.check_values({"smoothing": [0.0, 0.3]})
    trial = cli.trial({"run_tag": "sweep-2", "smoothing": 0.3})
    assert yaml.safe_load(trial.config_text)["run_tag"] == "sweep-2"
    assert trial.model.label_smoothing == 0.3  # through the project's link
    assert trial.model.configure_optimizers().param_groups[0]["tagged_by"] == "TaggedCLI"


def test_bad_config_files_are_refused(tmp_path):
    with pytest.raises(InvalidArgumentError, match="no such file"):
        LightningCliConfig.load(tmp_path / "missing.yaml")
    listing = tmp_path / "list.yaml"
    listing.write_text("- model\n- data\n")
    with pytest.raises(InvalidTypeError, match="mapping of LightningCLI sections"):
        LightningCliConfig.load(listing)
    typo = dict(sections(), trainner={"max_epochs": 2})
    with pytest.raises(InvalidArgumentError, match="'trainner'"):
        LightningCliConfig.load(typo)
    missing_class = copy.deepcopy(sections())
    missing_class["model"]["class_path"] = f"{MODEL}.NoSuchModel"
    with pytest.raises(InvalidArgumentError, match="NoSuchModel"):
        LightningCliConfig.load(missing_class)
    wrong_value = copy.deepcopy(sections())
    wrong_value["model"]["init_args"]["label_smoothing"] = "some"
    with pytest.raises(InvalidArgumentError, match="label_smoothing"):
        LightningCliConfig.load(wrong_value)


def test_the_spec_records_the_config_and_reads_it_back(example):
    spec = TrialSpec(model_cls=example.model_cls, lightning_cli=example, max_epochs=3)
    record = spec.to_record()
    assert record["lightning_cli"]["sections"] == sections()
    again = TrialSpec.from_record(record, DigitsModel)
    assert isinstance(again.routing, LightningCliConfig)
    assert again.routing.sections == example.sections
    trial = again.routing.trial({"optimizer.init_args.lr": 0.005})
    assert trial.model.configure_optimizers().param_groups[0]["lr"] == 0.005
    from lightning_tune.examples import DigitsClassifier

    with pytest.raises(InvalidArgumentError, match="not the class the LightningCLI config"):
        TrialSpec(model_cls=DigitsClassifier, lightning_cli=example)


@pytest.mark.parametrize("space,arguments,expected", [
    ({"model.init_args.hidden": 3}, {}, "model.init_args.label_smoothing"),
    ({"data.init_args.batch_size": {"distribution": "choice", "values": [32, "big"]}}, {},
     "batch_size='big'"),
    ({"optimizer.init_args.lr": {"distribution": "loguniform", "low": 1e-3, "high": 1e-1},
      "trainer.devices": 2}, {}, "num_workers="),
    ({"optimizer.init_args.lr": 0.01}, {"datamodule": object()}, "data: sections"),
    ({"optimizer.init_args.lr": 0.01}, {"strategy": "ddp", "num_workers": 0}, "num_workers"),
])
def test_bad_input_is_refused_before_ray_starts(ray_must_not_start, space, arguments, expected):
    with pytest.raises(InvalidArgumentError) as error:
        tune_lightning_cli(CONFIG, load_space(space), num_samples=1, **arguments)
    assert expected in str(error.value)
