"""Rank logs read back: the warnings about the model that the summary of a search shows once
instead of once per rank per trial."""

from lightning_tune.rank_logs import model_warnings

SITE = "/opt/venv/lib/python3.11/site-packages"
SYNC = ("It is recommended to use `self.log('val_acc', ..., sync_dist=True)` when logging on "
        "epoch level in distributed setting to accumulate the metric across devices.")


def write_logs(tmp_path, folder_name, **logs):
    folder = tmp_path / folder_name
    folder.mkdir()
    for name, lines in logs.items():
        (folder / f"{name}.log").write_text("".join(line + "\n" for line in lines))
    return str(folder)


def test_each_warning_about_the_model_once_with_its_trial_count(tmp_path):
    lightning = f"{SITE}/lightning/pytorch/trainer/connectors/logger_connector/result.py:433: "
    first = write_logs(tmp_path, "trial_a", rank_0=[
        "--- 2026-11-28 08:00:00 pid 10",
        lightning + SYNC,
        f"{SITE}/lightning/pytorch/utilities/_pytree.py:21: `isinstance(treespec, LeafSpec)` "
        "is deprecated",  # about torch's API, which Lightning calls: not the model's
        f"{SITE}/torch/nn/modules/module.py:1: UserWarning: some torch internals",
        "/home/me/project/model.py:12: UserWarning: my own warning",
        "    warnings.warn('my own warning')",
    ], rank_1=[lightning + SYNC])
    second = write_logs(tmp_path, "trial_b", trial=[lightning + SYNC])
    missing = str(tmp_path / "trial_on_another_node")
    assert model_warnings([first, second, missing]) == [
        f"{SYNC} (2 trials)", "UserWarning: my own warning (1 trial)"]


def test_the_list_is_cut_short_past_the_limit(tmp_path):
    folder = write_logs(tmp_path, "trial", rank_0=[f"/code/model.py:{n}: warning {n}"
                                                   for n in range(5)])
    assert model_warnings([folder], limit=3)[-1] == "... and 2 more"

