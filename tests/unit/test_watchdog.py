"""The stall clock: set-up has its own limit, and no rank's clock runs before all are ready."""

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
    board.ready(0)
    assert board.stalled(timeout_s=5, setup_timeout_s=600) is None
    clock.now += 600
    rank, seconds, where = board.stalled(timeout_s=5, setup_timeout_s=600)
    assert (rank, round(seconds)) == (1, 650) and "still starting" in where


def test_clocks_start_when_the_last_rank_is_ready():
    clock = FakeClock()
    board = StallClock(2, clock)
    board.ready(0)
    clock.now += 30  # rank 0 waits for rank 1 at the first collective: not a stall
    board.ready(1)
    clock.now += 4
    assert board.stalled(timeout_s=5, setup_timeout_s=600) is None
    clock.now += 2
    assert board.stalled(timeout_s=5, setup_timeout_s=600)[0] in (0, 1)


def test_the_rank_inside_a_step_is_blamed_before_its_waiting_peer():
    clock = FakeClock()
    board = StallClock(2, clock)
    board.ready(0)
    board.ready(1)
    board.mark(0, "training_step")
    board.mark(1, "training_step")
    clock.now += 1
    board.mark(0, None)  # rank 0 finished its step and waits for rank 1 in the next collective
    clock.now += 10
    assert board.stalled(timeout_s=5, setup_timeout_s=600) == (1, 11, "inside training_step")
