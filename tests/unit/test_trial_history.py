"""A restarted trial's history: storage is brought up to date before Tune's loggers read it."""

from types import SimpleNamespace

import pyarrow.fs

from lightning_tune.trial_history import KeepTrialHistory


def trial_at(tmp_path, checkpoint):
    local, remote = tmp_path / "driver", tmp_path / "storage"
    local.mkdir()
    remote.mkdir()
    for name, rows in (("result.json", '{"epoch": 0}\n{"epoch": 1}\n'),
                       ("progress.csv", "epoch\n0\n1\n")):
        (local / name).write_text(rows)
        (remote / name).write_text(rows.splitlines(keepends=True)[0])  # synced before epoch 1
    storage = SimpleNamespace(trial_fs_path=str(remote),
                              storage_filesystem=pyarrow.fs.LocalFileSystem())
    return SimpleNamespace(checkpoint=checkpoint, local_path=str(local), storage=storage)


def test_a_restart_pushes_the_rows_storage_missed(tmp_path):
    trial = trial_at(tmp_path, checkpoint=object())
    KeepTrialHistory().on_trial_start(iteration=0, trials=[trial], trial=trial)
    for name in ("result.json", "progress.csv"):
        assert (tmp_path / "storage" / name).read_text() == (tmp_path / "driver" / name).read_text()


def test_a_first_start_touches_nothing(tmp_path):
    trial = trial_at(tmp_path, checkpoint=None)
    KeepTrialHistory().on_trial_start(iteration=0, trials=[trial], trial=trial)
    assert (tmp_path / "storage" / "progress.csv").read_text() == "epoch\n"
