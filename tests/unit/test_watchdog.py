"""The stall clock: set-up (until a rank's first step) has its own limit, and no rank's clock
runs before every rank has reached its first step."""

from lightning_tune.launchers.watchdog import StallClock


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_a_slow_start_is_not_a_stall_until_the_setup_limit():
    clock = FakeClock()
    board = StallClock(2, clock)
    clock.now += 50  # importing torch on a busy machine: far past worker_timeout_s=5
    board.mark(0, "training_step")
    assert board.stalled(timeout_s=5, setup_timeout_s=600) is None
    clock.now += 600
    rank, seconds, where = board.stalled(timeout_s=5, setup_timeout_s=600)
    assert (rank, round(seconds)) == (1, 650) and "never reached its first step" in where


def test_clocks_start_at_the_last_ranks_first_step():
    clock = FakeClock()
    board = StallClock(2, clock)
    board.mark(0, "training_step")
    clock.now += 30  # rank 0 waits for rank 1 in the first collective: not a stall
    board.mark(1, "training_step")
    clock.now += 4
    assert board.stalled(timeout_s=5, setup_timeout_s=600) is None
    clock.now += 2
    assert board.stalled(timeout_s=5, setup_timeout_s=600)[0] in (0, 1)


def test_the_rank_inside_a_step_is_blamed_before_its_waiting_peer():
    clock = FakeClock()
    board = StallClock(2, clock)
    board.mark(0, "training_step")
    board.mark(1, "training_step")
    clock.now += 1
    board.mark(0, None)  # rank 0 finished its step and waits for rank 1 in the next collective
    clock.now += 10
    assert board.stalled(timeout_s=5, setup_timeout_s=600) == (1, 11, "inside training_step")


def test_a_rank_whose_training_returned_is_not_judged():
    clock = FakeClock()
    board = StallClock(2, clock)
    board.mark(0, "training_step")
    board.mark(1, "training_step")
    board.mark(0, None)
    board.mark(1, None)
    board.done(1)  # rank 1 tears down while rank 0 finishes
    clock.now += 10
    assert board.stalled(timeout_s=5, setup_timeout_s=600)[0] == 0
    board.done(0)
    assert board.stalled(timeout_s=5, setup_timeout_s=600) is None
