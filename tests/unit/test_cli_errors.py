"""The command line: our errors are one line and exit 2; anything else is a bug and shows itself."""

import pytest

from lightning_tune import api
from lightning_tune.cli import main
from lightning_tune.errors import AllTrialsFailedError, ExperimentNotFoundError


def test_our_error_is_one_line_with_status_2(monkeypatch, capsys, tmp_path):
    def refuse(path):
        raise ExperimentNotFoundError(f"{path} holds no lightning_tune.json:\\n it is not one.")

    monkeypatch.setattr(api, "load_result", refuse)
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lightning-tune report: ") and "\n" not in err


def test_all_trials_failing_exits_1(monkeypatch, capsys, tmp_path):
    def fail(path, resume_errored=False, time_budget_s=None):
        raise AllTrialsFailedError("All 2 trials failed")

    monkeypatch.setattr(api, "resume", fail)
    assert main(["resume", str(tmp_path)]) == 1
    assert "All 2 trials failed" in capsys.readouterr().err


def test_resume_passes_a_time_budget_on(monkeypatch, tmp_path):
    given = {}

    def fake(path, resume_errored=False, time_budget_s=None):
        given.update(path=path, time_budget_s=time_budget_s)
        raise AllTrialsFailedError("stop here")

    monkeypatch.setattr(api, "resume", fake)
    main(["resume", str(tmp_path), "--time-budget-s", "90"])
    assert given == {"path": str(tmp_path), "time_budget_s": 90.0}


@pytest.mark.parametrize("bug", [ValueError("a bug deep in a model"), TypeError("bad call")])
def test_a_bug_is_not_disguised_as_bad_input(monkeypatch, tmp_path, bug):
    def broken(path):
        raise bug

    monkeypatch.setattr(api, "load_result", broken)
    with pytest.raises(type(bug), match=str(bug)):
        main(["report", str(tmp_path)])
