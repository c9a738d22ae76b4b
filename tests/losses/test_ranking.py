"""Pairwise ranking losses against hand-computed cases."""

import itertools

import pytest
import torch

from spinelib.losses import deep_rank_svm_loss, ranknet_loss, select_pairs, spineranknet_loss


def t(values, dtype=torch.float32):
    return torch.tensor(values, dtype=dtype)


def test_correctly_ordered_pair_beyond_its_margin_costs_zero():
    # grades 0 < 1 (K = 3): w = 5, m = 0.5 + 1.5 * 5 / 10 = 1.25; s_1 - s_0 = 4 > 1.25
    assert spineranknet_loss(t([[1.0], [5.0]]), t([[0], [1]], torch.long), [3]).item() == 0.0


def test_wrongly_ordered_pair_costs_weight_times_squared_hinge():
    loss = spineranknet_loss(t([[5.0], [1.0]]), t([[0], [1]], torch.long), [3])
    assert loss.item() == pytest.approx(5 * (1.25 + 4) ** 2)


def test_inside_the_margin_costs_the_shortfall():
    # grades 0 and 2 (K = 3): w = 10, m = 0.5 + 1.5 = 2; s_1 - s_0 = 1.5 -> 10 * 0.5^2
    loss = spineranknet_loss(t([[1.0], [2.5]]), t([[0], [2]], torch.long), [3])
    assert loss.item() == pytest.approx(10 * 0.25)


def test_all_equal_grades_leave_only_the_similarity_term():
    scores, grades = t([[1.0], [2.0], [4.0]]), t([[1], [1], [1]], torch.long)
    expected = 0.25 * ((1 - 2) ** 2 + (1 - 4) ** 2 + (2 - 4) ** 2) / 3
    assert spineranknet_loss(scores, grades, [3]).item() == pytest.approx(expected)
    assert spineranknet_loss(scores, grades, [3], lambda_sim=0.0).item() == 0.0


def test_missing_grades_form_no_pairs():
    scores = t([[5.0], [1.0], [100.0]])
    with_missing = spineranknet_loss(scores, t([[0], [1], [-1]], torch.long), [3])
    assert with_missing.item() == pytest.approx(spineranknet_loss(scores[:2], t([[0], [1]], torch.long), [3]).item())


def test_unequal_numbers_of_grades_weight_a_one_grade_step_differently():
    # one grade apart: w = 10/(K-1): K = 3 -> 5 (m = 1.25), K = 5 -> 2.5 (m = 0.875); reversed by 1
    scores, grades = t([[2.0, 2.0], [1.0, 1.0]]), t([[0, 0], [1, 1]], torch.long)
    total = spineranknet_loss(scores, grades, [3, 5])
    assert total.item() == pytest.approx(5 * 2.25 ** 2 + 2.5 * 1.875 ** 2)
    assert spineranknet_loss(scores, grades, [3, 5], reduction="mean").item() == pytest.approx(total.item() / 2)


def test_matches_a_loop_over_pairs_on_random_batches():
    torch.manual_seed(0)
    scores, grades, ks = torch.rand(9, 3) * 10, torch.randint(-1, 4, (9, 3)), [4, 4, 5]
    total = 0.0
    for task, k in enumerate(ks):
        dis, sim = [], []
        for i, j in itertools.combinations(range(9), 2):
            yi, yj = grades[i, task].item(), grades[j, task].item()
            if yi < 0 or yj < 0:
                continue
            ds = (scores[i, task] - scores[j, task]).item()
            if yi == yj:
                sim.append(ds ** 2)
            else:
                w = abs(yi - yj) * 10 / (k - 1)
                m = 0.5 + 1.5 * w / 10
                dis.append(w * max(0.0, m - (1 if yi > yj else -1) * ds) ** 2)
        total += (sum(dis) / len(dis) if dis else 0) + 0.25 * (sum(sim) / len(sim) if sim else 0)
    assert spineranknet_loss(scores, grades, ks).item() == pytest.approx(total, rel=1e-5)


def test_hard_mining_selects_the_stated_share():
    torch.manual_seed(1)
    cost = torch.rand(8, 8, 2)
    valid = torch.triu(torch.ones(8, 8, dtype=torch.bool), 1)[:, :, None].expand(8, 8, 2).clone()
    chosen = select_pairs(cost, valid, hard_fraction=0.7, pair_fraction=0.5)
    assert chosen.sum(dim=(0, 1)).tolist() == [14, 14]      # 28 pairs per task -> 14 kept
    assert not (chosen & ~valid).any()
    for task in range(2):
        top = cost[..., task][valid[..., task]].topk(10).values  # ceil(0.7 * 14) = 10 hardest always kept
        kept = cost[..., task][chosen[..., task]]
        assert all((kept == v).any() for v in top)
    assert select_pairs(cost, valid, None).equal(valid)


def test_mining_changes_the_loss_and_keeps_gradients():
    torch.manual_seed(2)
    scores = (torch.rand(32, 11) * 10).requires_grad_()
    grades = torch.randint(-1, 4, (32, 11))
    full = spineranknet_loss(scores, grades, [4] * 11)
    mined = spineranknet_loss(scores, grades, [4] * 11, hard_fraction=0.7)
    assert mined.item() > full.item()   # the hard pairs weigh more than the average pair
    mined.backward()
    assert scores.grad is not None and scores.grad.abs().sum() > 0


def test_deep_rank_svm_is_unweighted_with_a_fixed_margin():
    loss = deep_rank_svm_loss(t([[5.0], [1.0]]), t([[0], [2]], torch.long), [3], margin=1.0)
    assert loss.item() == pytest.approx((1 + 4) ** 2)


def test_ranknet_is_logistic_on_ordered_pairs_only():
    loss = ranknet_loss(t([[0.0], [0.0], [3.0]]), t([[0], [1], [1]], torch.long))
    expected = (torch.nn.functional.softplus(t(0.0)) + torch.nn.functional.softplus(t(-3.0))) / 2
    assert loss.item() == pytest.approx(expected.item())


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="num_grades"):
        spineranknet_loss(torch.zeros(2, 2), torch.zeros(2, 2, dtype=torch.long), [3])
    with pytest.raises(ValueError, match="both be"):
        spineranknet_loss(torch.zeros(2, 2), torch.zeros(2, 3, dtype=torch.long), [3, 3])


# Pair budget and fraction (select_pairs): n_keep = min(ceil(pair_fraction * n) or n, pair_budget).

def upper_valid(b: int, t: int, missing: dict[int, list[int]] | None = None) -> torch.Tensor:
    """(b, b, t) mask of the pairs i < j, without the discs ``missing[task]`` in that task."""
    valid = torch.triu(torch.ones(b, b, dtype=torch.bool), 1)[:, :, None].repeat(1, 1, t)
    for task, discs in (missing or {}).items():
        valid[discs, :, task] = False
        valid[:, discs, task] = False
    return valid


def test_released_budget_of_500_pairs_at_batch_32_keeps_every_pair():
    torch.manual_seed(3)
    cost, valid = torch.rand(32, 32, 3), upper_valid(32, 3, {1: [0, 5]})
    assert valid[..., 0].sum() == 496                                  # 32 * 31 / 2 <= 500
    for fraction in (None, 1.0):
        assert select_pairs(cost, valid, hard_fraction=0.7, pair_fraction=fraction, pair_budget=500).equal(valid)


def test_budget_below_the_pair_count_keeps_exactly_the_budget_with_the_costliest_hard_share():
    torch.manual_seed(4)
    cost, valid = torch.rand(10, 10, 3), upper_valid(10, 3, {1: [0, 1, 2, 3, 4]})  # 45, 10, 45 pairs
    chosen = select_pairs(cost, valid, hard_fraction=0.7, pair_fraction=None, pair_budget=20)
    assert chosen.sum(dim=(0, 1)).tolist() == [20, 10, 20]             # min(n, budget) per task
    assert not (chosen & ~valid).any()
    for task in (0, 2):
        hardest = cost[..., task][valid[..., task]].topk(14).values     # ceil(0.7 * 20) = 14 costliest
        kept = cost[..., task][chosen[..., task]]
        assert torch.isin(hardest, kept).all()
    # with a fraction too: 45 -> ceil(0.5 * 45) = 23 -> budget 20; 10 -> 5
    chosen = select_pairs(cost, valid, hard_fraction=0.7, pair_fraction=0.5, pair_budget=20)
    assert chosen.sum(dim=(0, 1)).tolist() == [20, 5, 20]
    # tied costs (every pair satisfied: cost 0) still give exact counts
    chosen = select_pairs(torch.zeros(10, 10, 3), valid, hard_fraction=0.7, pair_fraction=None, pair_budget=20)
    assert chosen.sum(dim=(0, 1)).tolist() == [20, 10, 20] and not (chosen & ~valid).any()


def test_no_fraction_and_no_budget_is_every_pair():
    cost, valid = torch.rand(6, 6, 2), upper_valid(6, 2, {0: [2]})
    assert select_pairs(cost, valid, hard_fraction=0.7, pair_fraction=None).equal(valid)
    assert select_pairs(cost, valid, hard_fraction=None, pair_fraction=0.5, pair_budget=3).equal(valid)


def test_all_hard_keeps_the_costliest_and_the_uniform_share_comes_from_the_rest():
    cost, valid = torch.arange(64.0).reshape(8, 8, 1), upper_valid(8, 1)   # distinct costs, 28 pairs
    chosen = select_pairs(cost, valid, hard_fraction=1.0, pair_budget=5)[..., 0]
    # cost[i, j] = 8 i + j: the 5 costliest i < j pairs are (4, 6), (4, 7), (5, 6), (5, 7), (6, 7)
    assert cost[..., 0][chosen].sort().values.tolist() == [38.0, 39.0, 46.0, 47.0, 55.0]
    # 14 kept, 10 hard; the 4 others uniform over the 18 remaining pairs
    torch.manual_seed(5)
    counts = torch.zeros(8, 8)
    for _ in range(1000):
        counts += select_pairs(cost, valid, hard_fraction=0.7, pair_fraction=0.5)[..., 0]
    hard = counts == 1000
    assert hard.sum() == 10 and cost[..., 0][hard].min() > cost[..., 0][valid[..., 0] & ~hard].max()
    share = counts[valid[..., 0] & ~hard] / 1000
    assert share.numel() == 18 and (share - 4 / 18).abs().max() < 0.06


def test_mining_is_deterministic_under_the_seed():
    cost, valid = torch.rand(12, 12, 3), upper_valid(12, 3)
    torch.manual_seed(6)
    first = select_pairs(cost, valid, hard_fraction=0.3, pair_fraction=0.5)
    torch.manual_seed(6)
    assert select_pairs(cost, valid, hard_fraction=0.3, pair_fraction=0.5).equal(first)


@pytest.mark.parametrize("kwargs, match", [
    (dict(hard_fraction=1.5), "hard_fraction"), (dict(hard_fraction=-0.1), "hard_fraction"),
    (dict(hard_fraction=0.7, pair_fraction=0.0), "pair_fraction"),
    (dict(hard_fraction=0.7, pair_fraction=1.2), "pair_fraction"),
    (dict(hard_fraction=None, pair_fraction=float("nan")), "pair_fraction"),
    (dict(hard_fraction=0.7, pair_budget=0), "pair_budget"), (dict(hard_fraction=0.7, pair_budget=2.5), "pair_budget"),
    (dict(hard_fraction=None, pair_budget=True), "pair_budget"),
])
def test_bad_selection_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        select_pairs(torch.rand(4, 4, 1), upper_valid(4, 1), **kwargs)


def test_pairs_below_the_diagonal_raise():
    valid = upper_valid(4, 1)
    valid[2, 1, 0] = True
    with pytest.raises(ValueError, match="i >= j"):
        select_pairs(torch.rand(4, 4, 1), valid, hard_fraction=0.7)


@pytest.mark.parametrize("loss", [spineranknet_loss, deep_rank_svm_loss, ranknet_loss])
def test_every_loss_takes_the_budget(loss):
    torch.manual_seed(7)
    scores, grades = torch.rand(32, 2) * 10, torch.randint(0, 4, (32, 2))
    full = loss(scores, grades, [4, 4])
    assert loss(scores, grades, [4, 4], hard_fraction=0.7, pair_fraction=None, pair_budget=500).item() == full.item()
    assert loss(scores, grades, [4, 4], hard_fraction=1.0, pair_budget=10).item() > full.item()


# Loss ablations, one flag each, on three discs of one task with K = 3:
# scores (5, 1, 3), grades (0, 1, 2). Pairs (i, j): d = y_i - y_j, r = sign(d), Δs = s_i - s_j.
#   (0, 1): d = -1, w = 5,  m = 1.25, r Δs = -4  -> w (m + 4)^2 = 5 * 5.25^2 = 137.8125
#   (0, 2): d = -2, w = 10, m = 2.00, r Δs = -2  -> 10 * 4^2 = 160
#   (1, 2): d = -1, w = 5,  m = 1.25, r Δs = +2  -> 0
ABLATION_SCORES, ABLATION_GRADES = t([[5.0], [1.0], [3.0]]), t([[0], [1], [2]], torch.long)


def ablation_loss(**kwargs) -> float:
    return spineranknet_loss(ABLATION_SCORES, ABLATION_GRADES, [3], **kwargs).item()


def test_ablation_reference_value():
    assert ablation_loss() == pytest.approx((137.8125 + 160 + 0) / 3)


def test_ablation_without_severity_weight():
    assert ablation_loss(severity_weight=False) == pytest.approx((5.25 ** 2 + 4 ** 2 + 0) / 3)


def test_ablation_without_adaptive_margin():
    # fixed margin 1: 5 * (1 + 4)^2, 10 * (1 + 2)^2, max(0, 1 - 2) = 0
    assert ablation_loss(adaptive_margin=False) == pytest.approx((125 + 90 + 0) / 3)
    assert ablation_loss(adaptive_margin=False, margin=3.0) == pytest.approx((5 * 49 + 10 * 25 + 5 * 1) / 3)


def test_ablation_without_similarity_term():
    # a fourth disc of grade 1 at score 2 adds the same-grade pair (1, 3): Δs = -1, (Δs)^2 = 1
    scores, grades = t([[5.0], [1.0], [3.0], [2.0]]), t([[0], [1], [2], [1]], torch.long)
    # ordered pairs added: (0, 3) d=-1 r Δs=-3 -> 5 * 4.25^2; (2, 3) d=1 r Δs=1 -> 5 * 0.25^2
    hinge = (137.8125 + 160 + 0 + 5 * 4.25 ** 2 + 5 * 0.25 ** 2) / 5
    assert spineranknet_loss(scores, grades, [3]).item() == pytest.approx(hinge + 0.25 * 1)
    assert spineranknet_loss(scores, grades, [3], lambda_sim=0.0).item() == pytest.approx(hinge)


def test_ablation_all_pairs_versus_mining():
    # keep 1 of 3 pairs, all of it hard: the costliest, (0, 2) at 160
    assert ablation_loss(hard_fraction=1.0, pair_fraction=None, pair_budget=1) == pytest.approx(160)
    assert ablation_loss(hard_fraction=1.0, pair_fraction=0.34) == pytest.approx((137.8125 + 160) / 2)
    assert ablation_loss(hard_fraction=None, pair_budget=1) == pytest.approx(ablation_loss())
