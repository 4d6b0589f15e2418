"""Targets and one worker's plan: pure functions of a view, so every worker agrees."""

from __future__ import annotations

import pytest

from app.bots.fleet.balancer import Member, compute_targets, plan_round


def members(*ids: str, capacities: dict[str, int] | None = None) -> list[Member]:
    capacities = capacities or {}
    return [Member(i, capacities.get(i)) for i in ids]


@pytest.mark.parametrize(
    ("bots", "workers", "expected"),
    [
        (0, 3, [0, 0, 0]),
        (1, 3, [1, 0, 0]),
        (10, 3, [4, 3, 3]),  # within one, the oldest first
        (12, 3, [4, 4, 4]),
        (2000, 2, [1000, 1000]),
        (7, 1, [7]),
    ],
)
def test_targets_are_even_within_one_oldest_first(bots: int, workers: int, expected: list[int]) -> None:
    ids = [f"w{i}" for i in range(workers)]
    targets = compute_targets(members(*ids), bots)
    assert [targets[i] for i in ids] == expected
    assert sum(targets.values()) == bots


def test_capacities_cap_a_target_and_the_rest_goes_to_the_others() -> None:
    targets = compute_targets(members("a", "b", "c", capacities={"a": 2}), 12)
    assert targets == {"a": 2, "b": 5, "c": 5}
    targets = compute_targets(members("a", "b", capacities={"a": 0, "b": 3}), 10)
    assert targets == {"a": 0, "b": 3}  # the fleet cannot hold them all: 7 stay unowned


def test_no_members_no_targets() -> None:
    assert compute_targets([], 5) == {}


def test_every_worker_computes_the_same_targets() -> None:
    view = members("a", "b", "c", capacities={"b": 1})
    assert compute_targets(view, 9) == compute_targets(list(view), 9) == {"a": 4, "b": 1, "c": 4}


def test_below_target_claims_the_deficit_starting_at_its_own_offset() -> None:
    view = members("a", "b")
    targets = compute_targets(view, 10)
    free = list(range(1, 11))
    a = plan_round(me="a", members=view, targets=targets, held=[], counts={}, free=free, idle=[], stable=True)
    b = plan_round(me="b", members=view, targets=targets, held=[], counts={}, free=free, idle=[], stable=True)
    assert a.claim == (1, 2, 3, 4, 5) and not a.release
    assert b.claim == (6, 7, 8, 9, 10)  # no race for the same leases when both start together


def test_at_target_nothing_moves() -> None:
    view = members("a", "b")
    targets = compute_targets(view, 4)
    plan = plan_round(me="a", members=view, targets=targets, held=[1, 2], counts={"a": 2, "b": 2},
                      free=[], idle=[1, 2], stable=True)  # fmt: skip
    assert plan.empty


def test_above_target_hands_over_idle_bots_first_once_stable() -> None:
    view = members("a", "b")  # b just joined: targets 2 and 2, a holds all 4
    targets = compute_targets(view, 4)
    counts = {"a": 4, "b": 0}
    unstable = plan_round(me="a", members=view, targets=targets, held=[1, 2, 3, 4], counts=counts,
                          free=[], idle=[2], stable=False)  # fmt: skip
    assert unstable.empty  # hysteresis: a worker that blinks in and out moves nothing
    plan = plan_round(me="a", members=view, targets=targets, held=[1, 2, 3, 4], counts=counts,
                      free=[], idle=[2], stable=True)  # fmt: skip
    assert plan.release == (2, 4) and not plan.claim  # the idle one, then the newest


def test_nothing_is_handed_over_when_no_one_is_short() -> None:
    """A view in which everyone else is full (another worker's count lags): keep the bots."""
    view = members("a", "b")
    targets = compute_targets(view, 4)
    plan = plan_round(me="a", members=view, targets=targets, held=[1, 2, 3], counts={"a": 3, "b": 2},
                      free=[], idle=[], stable=True)  # fmt: skip
    assert plan.empty


def test_a_worker_outside_the_members_plans_nothing() -> None:
    view = members("a")
    plan = plan_round(me="draining", members=view, targets=compute_targets(view, 3), held=[1],
                      counts={}, free=[2, 3], idle=[], stable=True)  # fmt: skip
    assert plan.empty


def test_a_new_worker_moves_only_its_share() -> None:
    """Three workers with 10, 10, 10; a fourth joins: 30 over 4 is 8, 8, 7, 7: only 7 + 1 move."""
    old = members("a", "b", "c")
    new = members("a", "b", "c", "d")
    assert compute_targets(old, 30) == {"a": 10, "b": 10, "c": 10}
    targets = compute_targets(new, 30)
    assert targets == {"a": 8, "b": 8, "c": 7, "d": 7}
    counts = {"a": 10, "b": 10, "c": 10, "d": 0}
    held = {"a": list(range(0, 10)), "b": list(range(10, 20)), "c": list(range(20, 30))}
    moved = sum(
        len(
            plan_round(
                me=w, members=new, targets=targets, held=held[w], counts=counts, free=[], idle=[], stable=True
            ).release
        )
        for w in ("a", "b", "c")
    )
    assert moved == 7
