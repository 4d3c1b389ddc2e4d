"""The ablation's seed statistics against numbers worked out by hand."""

from __future__ import annotations

import math

import pytest

from experiments.masking_ablation.stats import mean_ci, paired_difference, t975


def test_t_quantiles_match_the_tables():
    assert t975(1) == 12.706 and t975(2) == 4.303 and t975(30) == 2.042
    # Beyond the table: the expansion is within 1e-3 of the exact quantiles.
    for df, exact in ((31, 2.0395), (40, 2.0211), (60, 2.0003), (120, 1.9799), (10_000, 1.9602)):
        assert abs(t975(df) - exact) < 1e-3
    with pytest.raises(ValueError):
        t975(0)


def test_mean_and_t_interval_of_three_seeds():
    interval = mean_ci([1.0, 2.0, 3.0])  # mean 2, sample sd 1
    assert interval.mean == 2.0 and interval.n == 3
    assert interval.half_width == pytest.approx(4.303 / math.sqrt(3))
    assert interval.format(2) == "2.00 ± 2.48"
    assert not interval.excludes_zero  # 2 < 2.48
    assert mean_ci([1.9, 2.0, 2.1]).excludes_zero  # 2 ± 0.25


def test_one_seed_has_no_interval():
    interval = mean_ci([0.7])
    assert interval.half_width is None and not interval.excludes_zero
    assert interval.format(3) == "0.700"


def test_paired_differences_use_only_shared_seeds_and_cancel_the_seed_offsets():
    # Each seed shifts both strategies alike (0, +1, -1): unpaired, the strategies' intervals overlap widely;
    # paired, the consistent 0.10-0.12 gain excludes 0.
    baseline = {0: 2.00, 1: 3.00, 2: 1.00, 3: 9.99}
    strategy = {0: 1.90, 1: 2.89, 2: 0.88}
    difference = paired_difference(strategy, baseline)
    assert difference.n == 3  # seed 3 ran only for the baseline
    assert difference.mean == pytest.approx(-0.11)
    assert difference.half_width == pytest.approx(4.303 * 0.01 / math.sqrt(3))
    assert difference.excludes_zero
    assert not mean_ci(list(strategy.values())).half_width < abs(difference.mean)  # unpaired: no conclusion
    assert difference.format(3, signed=True) == "-0.110 ± 0.025"
    assert paired_difference({5: 1.0}, baseline) is None


def test_inconsistent_differences_do_not_exclude_zero():
    difference = paired_difference({0: 1.1, 1: 1.3, 2: 0.8}, {0: 1.0, 1: 1.0, 2: 0.7})  # +0.1, +0.3, +0.1
    assert difference.mean == pytest.approx(0.5 / 3)
    assert difference.half_width == pytest.approx(4.303 * math.sqrt(0.04 / 3) / math.sqrt(3))
    assert not difference.excludes_zero
