import torch

from fm.training.losses import masked_mean, pinball


def test_pinball_values():
    q = torch.tensor([0.1, 0.5, 0.9])
    pred = torch.zeros(3)
    # target above every prediction: loss = q * diff, averaged over levels
    assert torch.isclose(pinball(pred, torch.tensor(2.0), q), torch.tensor((0.1 + 0.5 + 0.9) * 2 / 3))
    # target below: (1 - q) * |diff|
    assert torch.isclose(pinball(pred, torch.tensor(-1.0), q), torch.tensor((0.9 + 0.5 + 0.1) / 3))
    assert pinball(torch.full((3,), 4.0), torch.tensor(4.0), q) == 0


def test_masked_mean_ignores_masked_and_handles_empty():
    x = torch.tensor([1.0, 2.0, 100.0])
    assert masked_mean(x, torch.tensor([True, True, False])) == 1.5
    assert masked_mean(x, torch.zeros(3, dtype=torch.bool)) == 0
