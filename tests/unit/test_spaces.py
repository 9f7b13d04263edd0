"""Search-space specs, curated spaces, and what each searcher can express (no Ray needed)."""

import numpy as np
import pytest
from ray import tune
from ray.tune.search import sample
from ray.tune.search.variant_generator import generate_variants

import search_spaces
from lightning_tune.searchers import make_scheduler, make_search_alg
from lightning_tune.spaces import SearchSpace, load_space


def spec(distribution, **kwargs):
    return {"distribution": distribution, **kwargs}


@pytest.mark.parametrize("entry, domain_type, sampler_name, check", [
    (spec("uniform", low=0.1, high=0.5), sample.Float, "Uniform", lambda d: (d.lower, d.upper) == (0.1, 0.5)),
    (spec("quniform", low=0, high=1, q=0.25), sample.Float, "Quantized", lambda d: d.sampler.q == 0.25),
    (spec("loguniform", low=1e-4, high=1e-1), sample.Float, "LogUniform", lambda d: d.lower == 1e-4),
    (spec("qloguniform", low=1e-4, high=1e-1, q=1e-4), sample.Float, "Quantized",
     lambda d: type(d.sampler.sampler).__name__.lstrip("_") == "LogUniform"),
    (spec("randint", low=1, high=4), sample.Integer, "Uniform", lambda d: (d.lower, d.upper) == (1, 4)),
    (spec("choice", values=["a", "b"]), sample.Categorical, "Uniform", lambda d: d.categories == ["a", "b"]),
])
def test_each_distribution_maps_to_its_tune_domain(entry, domain_type, sampler_name, check):
    domain = SearchSpace({"x": entry}).to_tune()["x"]
    assert isinstance(domain, domain_type)
    assert type(domain.sampler).__name__.lstrip("_") == sampler_name and check(domain)


def test_grid_constants_and_tune_domains_pass_through():
    passed = tune.loguniform(1e-3, 1e-1)
    space = SearchSpace({"g": spec("grid", values=[1, 2]), "c": 7, "layers": [64, 32],
                         "t": passed, "tg": tune.grid_search([3, 4])}).to_tune()
    assert space["g"] == {"grid_search": [1, 2]} and space["tg"] == {"grid_search": [3, 4]}
    assert space["c"] == 7 and space["layers"] == [64, 32] and space["t"] is passed


def test_conditional_parameter_is_sampled_only_when_its_condition_holds():
    configs = []
    random_state = np.random.RandomState(0)
    space = load_space("optimizers").to_tune(seed=0)
    for _ in range(30):
        configs += [s["config"] for _, s in generate_variants({"config": space}, random_state=random_state)]
    for config in configs:
        if config["optimizer"] == "sgd":
            assert 0.8 <= config["momentum"] <= 0.99
        else:
            assert config["momentum"] is None
    assert {c["optimizer"] for c in configs} == {"adam", "adamw", "sgd"}


def _random_configs(seed, count=5):
    space, random_state = load_space("optimizers").to_tune(seed), np.random.RandomState(seed)
    return [s["config"] for _ in range(count)
            for _, s in generate_variants({"config": space}, random_state=random_state)]


def _searcher_configs(name, seed, count=8):
    space = load_space("optimizers" if name == "optuna" else "adamw")
    searcher, param_space = make_search_alg(name, space, "val_loss", "min", seed)
    searcher.set_search_properties("val_loss", "min", param_space)  # what Tune does
    configs = []
    for index in range(count):
        configs.append(searcher.suggest(f"t{index}"))
        searcher.on_trial_complete(f"t{index}", {"val_loss": float(index % 3)})
    return configs


@pytest.mark.parametrize("name", ["random", "optuna", "hyperopt"])
def test_a_seed_repeats_the_sequence_of_configs(name):
    sampled = _random_configs if name == "random" else (lambda s: _searcher_configs(name, s))
    first, again, other = sampled(1), sampled(1), sampled(2)
    assert first == again
    assert first != other


def test_optuna_define_by_run_leaves_inactive_parameters_none():
    searcher, param_space = make_search_alg("optuna", load_space("optimizers"), "val_loss", "min", 0)
    assert param_space == {}
    configs = [searcher.suggest(f"t{i}") for i in range(12)]
    assert all((c["momentum"] is None) == (c["optimizer"] != "sgd") for c in configs)


@pytest.mark.parametrize("searcher", ["random", "optuna", "hyperopt"])
def test_one_spec_serves_every_searcher(searcher):
    space = search_spaces.load("adam", "mlp_classifier", "regularisation", "batch_size")
    algorithm, param_space = make_search_alg(searcher, space, "val_loss", "min", seed=0)
    assert set(param_space) == {"optimizer", "lr", "hidden_size", "num_layers", "dropout",
                                "weight_decay", "batch_size"}
    if searcher != "random":  # the searcher's own converter accepts the whole space
        converted = type(algorithm).convert_search_space(param_space)
        assert set(converted) >= set(param_space) - {"optimizer"}


def test_curated_spaces_load_merge_override_and_explain():
    names = search_spaces.names()
    for expected in ("adam", "adamw", "sgd", "optimizers", "lr_schedule", "mlp_classifier",
                     "small_cnn", "regularisation", "batch_size"):
        assert expected in names
        for parameter in search_spaces.load(expected).parameters.values():
            assert parameter.why, f"{expected}.{parameter.name} says why its range is what it is"
    merged = search_spaces.load("adam", "adamw")  # a later space overrides an earlier one
    assert merged.entries["optimizer"] == "adamw" and "weight_decay" in merged.entries
    narrowed = search_spaces.load("adam", overrides={"lr": spec("loguniform", low=1e-3, high=2e-3)})
    assert narrowed.parameters["lr"].high == 2e-3
    assert "log scale" in search_spaces.describe("adam") or "Adam" in search_spaces.describe("adam")
    with pytest.raises(KeyError, match="Available: adam"):
        search_spaces.load("adamm")


def test_yaml_files_and_names_load(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("parameters:\n  lr: {distribution: loguniform, low: 1.0e-4, high: 1.0e-2}\n"
                    "  hidden_size: 64\n")
    space = load_space(str(path))
    assert space.parameters["lr"].distribution == "loguniform" and space.entries["hidden_size"] == 64
    assert set(load_space("sgd").names()) == {"optimizer", "lr", "momentum"}
    (tmp_path / "bad.yaml").write_text("lr: [unclosed\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_space(str(tmp_path / "bad.yaml"))
    with pytest.raises(FileNotFoundError):
        load_space(str(tmp_path / "missing.yaml"))


@pytest.mark.parametrize("entry, message", [
    (spec("uniform", low=1, high=1), r"'x': low \(1\) must be below high \(1\)"),
    (spec("loguniform", low=0, high=1), r"'x': a loguniform needs low > 0"),
    (spec("qloguniform", low=-1, high=1, q=0.1), "needs low > 0"),
    (spec("choice", values=[]), "needs a non-empty list"),
    (spec("grid", values="abc"), "needs a non-empty list"),
    (spec("gaussian", low=0, high=1), "unknown distribution 'gaussian'; use one of uniform"),
    (spec("uniform", low=0), r"missing \['high'\]"),
    (spec("uniform", low=0, high=1, q=2), r"unknown \['q'\]"),
    (spec("quniform", low=0, high=1, q=0), "q must be > 0"),
    (spec("randint", low=0.5, high=3), "randint needs integer bounds"),
    (spec("uniform", low=0, high=1, when={"opt": "sgd"}), "conditional on 'opt', which is not"),
])
def test_bad_specs_are_refused(entry, message):
    with pytest.raises(ValueError, match=message):
        SearchSpace({"x": entry})


def test_condition_on_a_value_the_parameter_never_takes():
    with pytest.raises(ValueError, match=r"sampled when opt == 'rmsprop', but 'opt' only takes"):
        SearchSpace({"opt": spec("choice", values=["adam", "sgd"]),
                     "m": spec("uniform", low=0, high=1, when={"opt": "rmsprop"})})


@pytest.mark.parametrize("space, searcher, message", [
    ({"lr": spec("loguniform", low=1e-4, high=1e-1)}, "grid", r"\['lr'\] are sampled distributions"),
    ({"b": spec("grid", values=[32, 64])}, "optuna", r"\['b'\] are grids, which search_alg='optuna'"),
    ({"b": tune.grid_search([32, 64])}, "hyperopt", r"\['b'\] are grids, which search_alg='hyperopt'"),
    ("optimizers", "hyperopt", r"\['momentum'\] are conditional .* Use search_alg='optuna'"),
    ({"lr": spec("qloguniform", low=1e-4, high=1e-1, q=1e-4)}, "optuna",
     r"\['lr'\] are qloguniform, which search_alg='optuna' cannot express"),
    ({"lr": 0.1}, "bayesian", "search_alg must be one of"),
])
def test_what_a_searcher_cannot_express_is_named(space, searcher, message):
    with pytest.raises(ValueError, match=message):
        make_search_alg(searcher, load_space(space), "val_loss", "min")


def test_schedulers_by_name():
    space = load_space("adam")
    names = {name: type(make_scheduler(name, 8, space)).__name__
             for name in ("fifo", "asha", "hyperband", "median", "pbt")}
    assert names == {"fifo": "FIFOScheduler", "asha": "AsyncHyperBandScheduler",
                     "hyperband": "HyperBandScheduler", "median": "MedianStoppingRule",
                     "pbt": "PopulationBasedTraining"}
    for name in ("asha", "hyperband"):  # a trial at max_epochs ends by itself (warm pool)
        assert make_scheduler(name, 8, space)._stop_last_trials is False
    pbt = make_scheduler("pbt", 8, load_space("optimizers"))
    assert set(pbt._hyperparam_mutations) == {"optimizer", "lr"}  # not the conditional momentum
    with pytest.raises(ValueError, match="needs search_alg='random'"):
        make_scheduler("pbt", 8, space, search_alg="optuna")
    with pytest.raises(ValueError, match="at least one sampled parameter"):
        make_scheduler("pbt", 8, SearchSpace({"lr": 0.1}))
    with pytest.raises(ValueError, match="scheduler must be one of"):
        make_scheduler("bohb", 8, space)
