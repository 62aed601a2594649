import math

import pytest
import torch

from simipu.losses import info_nce, inter_loss, intra_loss, topk_accuracy


def test_info_nce_equals_hand_computed_example():
    # Two 2-d unit vectors per side, so normalisation changes nothing.
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    k = torch.tensor([[0.6, 0.8], [1.0, 0.0]])
    tau = 0.5
    # logits = q·k / τ:  row 0: [0.6, 1.0] / 0.5 = [1.2, 2.0];  row 1: [0.8, 0.0] / 0.5 = [1.6, 0.0]
    lse0 = math.log(math.exp(1.2) + math.exp(2.0))
    lse1 = math.log(math.exp(1.6) + math.exp(0.0))
    expected = -((1.2 - lse0) + (0.0 - lse1)) / 2  # positives on the diagonal
    loss, top1, top5 = info_nce(q, k, temperature=tau)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert top1.item() == 0.0  # both queries prefer the wrong key
    assert top5.item() == 1.0  # top-5 clamps to P = 2: every positive is in it


def test_info_nce_normalises_its_inputs():
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    scales = torch.rand(6, 1, generator=g) + 0.5
    assert info_nce(q * scales, k * 3.0)[0].item() == pytest.approx(info_nce(q, k)[0].item(), rel=1e-5)


def test_perfect_alignment_at_low_temperature_gives_zero_loss_and_full_accuracy():
    q = torch.eye(8)  # orthogonal: every negative has similarity 0, the positive 1
    loss, top1, top5 = info_nce(q, q.clone(), temperature=0.01)
    assert loss.item() < 1e-6
    assert top1.item() == 1.0 and top5.item() == 1.0


def test_random_features_give_loss_near_log_p():
    g = torch.Generator().manual_seed(1)
    q, k = torch.randn(512, 128, generator=g), torch.randn(512, 128, generator=g)
    loss, top1, _ = info_nce(q, k, temperature=1.0)  # τ = 1 keeps logits small
    assert abs(loss.item() - math.log(512)) < 0.1
    assert top1.item() < 0.05


def test_topk_accuracy_counts_rank_of_the_target():
    logits = torch.tensor([[3.0, 2.0, 1.0, 0.0, -1.0, -2.0],
                           [0.0, 1.0, 2.0, 3.0, 4.0, 5.0],
                           [0.0, 9.0, 8.0, 7.0, 6.0, 5.0]])
    target = torch.tensor([0, 1, 2])  # ranks 1, 5, 2
    top1, top2, top5 = topk_accuracy(logits, target, ks=(1, 2, 5))
    assert top1.item() == pytest.approx(1 / 3)
    assert top2.item() == pytest.approx(2 / 3)
    assert top5.item() == pytest.approx(1.0)


@pytest.mark.parametrize("loss_fn", [intra_loss, inter_loss], ids=["intra_keys", "inter_points"])
def test_only_the_query_side_receives_gradients(loss_fn):
    # intra: keys z_b detached (Eq. 4); inter: point side detached, "crop the gradient" (Eq. 7)
    query = torch.randn(5, 8, requires_grad=True)
    key = torch.randn(5, 8, requires_grad=True)
    loss, _, _ = loss_fn(query, key)
    loss.backward()
    assert query.grad is not None and query.grad.abs().sum() > 0
    assert key.grad is None


def test_detached_losses_keep_the_value_of_plain_info_nce():
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(7, 3, generator=g), torch.randn(7, 3, generator=g)
    plain = info_nce(a, b)[0].item()
    assert intra_loss(a, b)[0].item() == pytest.approx(plain)
    assert inter_loss(a, b)[0].item() == pytest.approx(plain)


@pytest.mark.parametrize("q_shape, k_shape", [((4, 3), (5, 3)), ((4,), (4,)), ((0, 3), (0, 3))])
def test_info_nce_rejects_bad_shapes(q_shape, k_shape):
    with pytest.raises(ValueError):
        info_nce(torch.zeros(q_shape), torch.zeros(k_shape))


def test_info_nce_runs_in_float32_under_autocast():
    g = torch.Generator().manual_seed(3)
    q, k = torch.randn(16, 8, generator=g), torch.randn(16, 8, generator=g)
    reference = info_nce(q, k)[0]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = info_nce(q.bfloat16(), k.bfloat16())[0]
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(reference.item(), rel=2e-2)  # only the bf16 inputs differ
