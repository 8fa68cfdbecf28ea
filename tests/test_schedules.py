import math

import pytest

from nteach.errors import UserError
from nteach.teaching import Teacher
from nteach.teaching.schedules import check_ratio, interval_at, ratio_at


@pytest.mark.parametrize("schedule,step,expected", [
    ("constant", 0, 0.2), ("constant", 73, 0.2),
    ("linear", 0, 0.2), ("linear", 25, 0.4), ("linear", 100, 1.0),
    ("step", 0, 0.2), ("step", 9, 0.2), ("step", 10, 0.28), ("step", 55, 0.6), ("step", 99, 0.92),
    ("step", 100, 1.0),
    ("cosine", 0, 0.2), ("cosine", 25, 1 - 0.4 * (1 + math.sqrt(0.5))), ("cosine", 50, 0.6),
    ("cosine", 100, 1.0),
])
def test_rising_ratio_schedules(schedule, step, expected):
    assert ratio_at(schedule, step, 100, 0.2) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("step,expected",
                         [(0, 0.8), (50, 0.5), (100, 0.2), (25, 0.8 - 0.3 * (1 - math.sqrt(0.5)))])
def test_reverse_cosine_falls_from_r0_to_one_fifth(step, expected):
    assert ratio_at("reverse-cosine", step, 100, 0.8) == pytest.approx(expected, abs=1e-12)


def test_schedules_read_progress_so_seconds_work_like_steps():
    assert ratio_at("linear", 15.0, 60.0, 0.2) == pytest.approx(ratio_at("linear", 25, 100, 0.2))


@pytest.mark.parametrize("interval,step,expected", [
    ("dense", 0, 1), ("dense", 999, 1), ("dense2", 500, 2),
    ("incremental", 0, 1), ("incremental", 249, 1), ("incremental", 250, 10), ("incremental", 399, 10),
    ("incremental", 400, 20), ("incremental", 550, 30), ("incremental", 700, 40), ("incremental", 850, 50),
    ("incremental", 1000, 50),
    ("reverse-incremental", 0, 90), ("reverse-incremental", 99, 90), ("reverse-incremental", 100, 80),
    ("reverse-incremental", 450, 50), ("reverse-incremental", 899, 10), ("reverse-incremental", 900, 1),
    ("reverse-incremental", 1000, 1),
    ("void", 10, None),
])
def test_intervals(interval, step, expected):
    assert interval_at(interval, step, 1000) == expected


def selection_events(interval: str, total: int) -> list[int]:
    teacher = Teacher("uniform", pool_size=50, ratio=0.2, interval=interval)
    events = []
    for step in range(total):
        before = teacher.events
        teacher.select(step, step / total, score=lambda name: None)
        if teacher.events > before:
            events.append(step)
    return events


def test_incremental_event_steps_by_hand():
    # dense until 0.25T; at step 34 (p=.34) the interval is 10; at step 44 it is already 20
    # (so no event until 54), and from 54 no interval elapses before the end.
    assert selection_events("incremental", 100) == list(range(25)) + [34, 54]


def test_dense2_and_reverse_incremental_event_steps():
    assert selection_events("dense2", 9) == [0, 2, 4, 6, 8]
    # 90 steps per event in the first tenth of 1000 steps, 80 in the second, 70 in the third:
    # step 170 is an event (80 after 90); by step 240 the interval is 70, so 240 is the next.
    assert selection_events("reverse-incremental", 1000)[:4] == [0, 90, 170, 240]


def test_void_never_selects():
    teacher = Teacher("uniform", pool_size=10, interval="void")
    assert teacher.select(0, 0.0, score=lambda name: None).indices is None
    assert teacher.events == 0


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5, float("nan")])
def test_bad_ratio(bad):
    with pytest.raises(UserError, match="ratio"):
        check_ratio(bad)


def test_unknown_schedule_names():
    with pytest.raises(UserError, match="ratio schedule 'steep'"):
        Teacher("uniform", 10, schedule="steep")
    with pytest.raises(UserError, match="interval 'sometimes'"):
        Teacher("uniform", 10, interval="sometimes")
