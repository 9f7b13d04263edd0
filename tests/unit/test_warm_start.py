"""Optuna and HyperOpt told an earlier search's trials propose near its best region (no Ray)."""

import math
import random
import statistics

import numpy as np
import pytest
from ray import tune

from lightning_tune.searchers import make_search_alg
from lightning_tune.spaces import load_space

pytestmark = pytest.mark.timeout(120)


def proposals(evaluated, count=10, seed=0, search_alg="optuna", metric="val_loss",
              mode="min"):
    """The first ``count`` lr values the searcher proposes for a fresh search of lr."""
    space = load_space({"lr": tune.loguniform(1e-5, 1.0), "hidden_size": 32})
    searcher, param_space = make_search_alg(search_alg, space, metric, mode, seed=seed,
                                            evaluated=evaluated)
    several = isinstance(metric, list)  # Tune is then told no metric: the searcher knows them
    searcher.set_search_properties(None if several else metric, None if several else mode,
                                   param_space)
    return [searcher.suggest(f"trial_{index}")["lr"] for index in range(count)]


def earlier_search(count=20, seed=1):
    """An earlier search spread over the whole range; its loss is least at lr = 1e-2."""
    rng = random.Random(seed)
    configs = [{"lr": 10 ** rng.uniform(-5, 0)} for _ in range(count)]
    return configs, [(math.log10(config["lr"]) + 2) ** 2 for config in configs]


def distance_from_best(lrs):
    return [abs(math.log10(lr) + 2) for lr in lrs]


@pytest.mark.parametrize("search_alg", ["optuna", "hyperopt"])
def test_the_first_proposals_concentrate_near_the_earlier_best(search_alg):
    warm = distance_from_best(proposals(earlier_search(), search_alg=search_alg))
    cold = distance_from_best(proposals(([], []), search_alg=search_alg))
    # told 20 trials, TPE models from its first proposal; cold, it samples at random, which
    # puts 1 in 5 within half a decade of 1e-2
    near_warm = sum(distance < 0.5 for distance in warm)
    assert near_warm >= 6 and near_warm > sum(distance < 0.5 for distance in cold), (warm, cold)
    assert statistics.median(warm) < statistics.median(cold)
    assert proposals(earlier_search(), search_alg=search_alg) == \
        proposals(earlier_search(), search_alg=search_alg)  # seeded: repeatable


def test_several_objectives_start_from_the_earlier_front():
    """val_loss least at lr = 1e-2, latency at 1e-4: the front spans the decades between."""
    configs, losses = earlier_search()
    latencies = [(math.log10(config["lr"]) + 4) ** 2 for config in configs]

    def several(values, modes=("min", "min")):
        return [math.log10(lr) for lr in proposals(values, count=20, mode=list(modes),
                                                   metric=["val_loss", "latency_ms"])]

    warm = several((configs, [list(pair) for pair in zip(losses, latencies)]))
    cold = several(([], []))
    # cold, TPE has nothing to model and samples at random: half of the decades are the front
    on_front = sum(-4.25 <= exponent <= -1.75 for exponent in warm)  # here 17 of 20, cold 9
    assert on_front >= 15 and on_front - sum(-4.25 <= e <= -1.75 for e in cold) >= 5
    # an objective to maximise is told as such: its negation, maximised, proposes the same
    assert several((configs, [[loss, -latency] for loss, latency in zip(losses, latencies)]),
                   modes=("min", "max")) == warm


def test_hyperopt_history_holds_the_earlier_trials_with_their_losses():
    """A choice goes in by its index and a max metric as its negative, as HyperOpt keeps them."""
    from lightning_tune.informed_hyperopt import InformedHyperOptSearch

    space = load_space({"lr": tune.loguniform(1e-4, 1e-1),
                        "width": tune.choice([16, 32, 64]), "epochs": 3})
    configs = [{"lr": 1e-3, "width": 64}, {"lr": 1e-2, "width": 16}]
    searcher, param_space = make_search_alg("hyperopt", space, "val_acc", "max", seed=0,
                                            evaluated=(configs, [0.9, 0.7]))
    assert isinstance(searcher, InformedHyperOptSearch)
    searcher.set_search_properties("val_acc", "max", param_space)
    history = searcher.get_state()["hyperopt_trials"]
    assert [trial["misc"]["vals"] for trial in history.trials] == [
        {"lr": [1e-3], "width": [2]}, {"lr": [1e-2], "width": [0]}]
    assert history.losses() == [-0.9, -0.7]
    proposed = searcher.suggest("trial_0")  # a new trial id, not one of the told ones
    assert proposed["width"] in (16, 32, 64) and proposed["epochs"] == 3
    assert len({trial["tid"] for trial in history.trials}) == 3


def test_hyperopt_given_its_space_directly_is_told_too():
    from lightning_tune.informed_hyperopt import InformedHyperOptSearch

    searcher = InformedHyperOptSearch([{"lr": 1e-3}], [0.5], metric="val_loss", mode="min",
                                      space={"lr": tune.loguniform(1e-4, 1e-1)})
    assert searcher.get_state()["hyperopt_trials"].losses() == [0.5]


@pytest.mark.parametrize("space, search_alg, words", [
    ({"optimizer": {"distribution": "choice", "values": ["sgd", "adam"]},
      "momentum": {"distribution": "uniform", "low": 0.0, "high": 0.9,
                   "when": {"optimizer": "sgd"}}},
     "optuna", r"cannot tell optuna earlier trials of a space with conditional parameters "
               r"\['momentum'\]"),
    ({"lr": tune.loguniform(1e-3, 1e-1), "momentum": [tune.uniform(0.0, 0.9)]}, "hyperopt",
     r"\['momentum'\] hold parameters inside them"),
    ({"lr": tune.loguniform(1e-3, 1e-1)}, "own", "for your own Searcher"),
])
def test_what_cannot_be_told_earlier_trials_is_refused_before_the_folder_is_read(
        ray_must_not_start, tmp_path, space, search_alg, words):
    from ray.tune.search.optuna import OptunaSearch

    from lightning_tune import tune_lightning
    from lightning_tune.errors import InvalidArgumentError
    from lightning_tune.examples import DigitsClassifier

    with pytest.raises(InvalidArgumentError, match=words):  # tmp_path is no experiment
        tune_lightning(DigitsClassifier, space, warm_start=str(tmp_path),
                       search_alg=OptunaSearch() if search_alg == "own" else search_alg,
                       storage_path=str(tmp_path))


@pytest.mark.parametrize("domain, inside, outside", [
    (tune.randint(1, 10), [1, 9, np.int64(5)], [0, 10, -1]),   # the upper bound is excluded
    (tune.qrandint(0, 12, 4), [0, 4, 12], [2, 13]),             # on the step, upper included
    (tune.loguniform(1e-4, 1e-1), [1e-4, 1e-1], [1e-5, 0.2, None, "0.01", True]),
    (tune.quniform(0.0, 1.0, 0.25), [0.0, 0.75, 1.0], [0.3]),
    (tune.randn(0.0, 1.0), [-40.0, 3.0], ["x"]),                # unbounded
    (tune.choice(["a", 2]), ["a", 2], ["b", 3]),
])
def test_earlier_values_are_kept_only_where_this_search_could_draw_them(domain, inside,
                                                                        outside):
    from lightning_tune.warm_start import can_draw

    assert all(can_draw(domain, value) for value in inside)
    assert not any(can_draw(domain, value) for value in outside)
