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
