"""ByteDropout keeps nn.Dropout's contract: the drop rate, the scale that keeps the mean, the gradient through
the kept elements only, identity in eval, and masks that follow torch's seed."""

import pytest
import torch

from memorylab.models.byte_dropout import ByteDropout
from memorylab.models.reader_head import HeadShape, ReaderHead


def test_drops_the_rounded_share_and_keeps_the_mean():
    torch.manual_seed(0)
    drop = ByteDropout(0.1).train()
    x = torch.ones(200_000)
    y = drop(x)
    dropped = (y == 0).float().mean().item()
    assert drop.cut == 26
    assert dropped == pytest.approx(26 / 256, abs=0.003)
    values = torch.unique(y).tolist()
    assert len(values) == 2 and values[0] == 0.0 and values[1] == pytest.approx(256 / 230)
    assert y.mean().item() == pytest.approx(1.0, abs=0.01)


def test_masks_are_uniform_across_byte_positions():
    """Every byte of a 64-bit draw is used: a biased byte (say the sign's) would drop some positions more."""
    torch.manual_seed(1)
    y = ByteDropout(0.5).train()(torch.ones(80_000, 8))
    per_position = (y == 0).float().mean(dim=0)
    assert torch.all((per_position - 0.5).abs() < 0.015), per_position


def test_gradient_flows_through_kept_elements_only():
    torch.manual_seed(2)
    x = torch.randn(64, 33, requires_grad=True)  # an odd size: the last draw is cut
    y = ByteDropout(0.25).train()(x)
    y.sum().backward()
    kept = y != 0
    assert torch.allclose(x.grad[kept], torch.full_like(x.grad[kept], 256 / 192))
    assert torch.all(x.grad[~kept] == 0)


def test_eval_and_zero_probability_are_the_identity():
    x = torch.randn(10, 10)
    assert ByteDropout(0.3).eval()(x) is x
    assert ByteDropout(0.0).train()(x) is x


def test_same_seed_same_mask():
    drop = ByteDropout(0.2).train()
    torch.manual_seed(3)
    a = drop(torch.ones(1000))
    torch.manual_seed(3)
    assert torch.equal(a, drop(torch.ones(1000)))
    assert not torch.equal(a, drop(torch.ones(1000)))


def test_refuses_a_probability_outside_its_range():
    with pytest.raises(ValueError, match="dropout probability"):
        ByteDropout(1.0)


def test_reader_head_uses_it_everywhere_it_drops():
    head = ReaderHead(HeadShape(feature_size=8, width=16, layers=1, dropout=0.1, max_positions=32))
    plain = [m for m in head.modules() if isinstance(m, torch.nn.Dropout)]
    assert plain == []
    assert sum(isinstance(m, ByteDropout) for m in head.modules()) == 1 + 3 * len(head.encoder)
