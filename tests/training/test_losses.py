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


def _batch(mask_context: bool):
    import torch

    torch.manual_seed(0)
    b, c, p, L = 2, 2, 6, 16
    tm = torch.zeros(b, c, p, dtype=torch.bool)
    tm[..., -2:] = True  # the future: 2 patches
    if mask_context:
        tm[:, 0, 1] = True  # one masked context patch in channel 0
    return {"values": torch.randn(b, c, p * L), "observed": torch.ones(b, c, p * L, dtype=torch.bool),
            "kinds": torch.zeros(b, c, dtype=torch.long), "target_mask": tm, "channel_mask": torch.ones(b, c, dtype=torch.bool),
            "n_future": 2}


def test_objective_weights_and_parts():
    """The loss is forecast_weight x (pinball on future patches) + reconstruction_weight x (pinball on masked
    context patches); without masked context the reconstruction part is 0."""
    import torch

    from fm.model import ArchConfig
    from fm.training.module import MaxFMModule, ObjectiveConfig

    arch = ArchConfig(d_model=32, n_layers=1, n_heads=4)
    losses = {}
    for w in ((1.0, 0.0), (0.0, 1.0), (2.0, 3.0)):
        torch.manual_seed(0)
        m = MaxFMModule(arch=arch, objective=ObjectiveConfig(forecast_weight=w[0], reconstruction_weight=w[1])).eval()
        with torch.no_grad():
            losses[w] = m.losses(_batch(mask_context=True))
    f, r = losses[(1.0, 0.0)]["loss_forecast"], losses[(1.0, 0.0)]["loss_reconstruction"]
    assert f > 0 and r > 0 and not torch.isclose(f, r)
    torch.testing.assert_close(losses[(1.0, 0.0)]["loss"], f)
    torch.testing.assert_close(losses[(0.0, 1.0)]["loss"], r)
    torch.testing.assert_close(losses[(2.0, 3.0)]["loss"], 2 * f + 3 * r)
    with torch.no_grad():
        plain = m.losses(_batch(mask_context=False))
    assert plain["loss_reconstruction"] == 0 and plain["loss_forecast"] > 0


def test_warmup_cosine_schedule_and_decay_groups():
    import math

    from fm.model import ArchConfig
    from fm.training.module import MaxFMModule, OptimConfig

    m = MaxFMModule(arch=ArchConfig(d_model=32, n_layers=1, n_heads=4),
                    optim=OptimConfig(lr=1e-3, warmup_steps=4, min_lr_ratio=0.1, total_steps=20))
    conf = m.configure_optimizers()
    opt, sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    lrs = []
    for _ in range(21):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert math.isclose(lrs[0], 1e-3 / 5) and all(a < b for a, b in zip(lrs[:4], lrs[1:5], strict=True))  # linear warmup
    assert math.isclose(lrs[4], 1e-3)  # peak at the end of warmup
    assert all(a >= b for a, b in zip(lrs[4:20], lrs[5:], strict=True))  # cosine decay ...
    assert math.isclose(lrs[12], 1e-4 + 0.9e-3 * 0.5)  # ... half way at step 4 + 16/2
    assert math.isclose(lrs[20], 1e-4)  # ... to min_lr_ratio x lr at total_steps
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    names = {id(p): n for n, p in m.model.named_parameters()}
    assert all(p.ndim >= 2 and "embed" not in names[id(p)] for p in decay["params"])
    assert {names[id(p)] for p in no_decay["params"]} >= {"norm.weight", "kind_embed.weight"}
