"""gentk.optim.fast: the fused or foreach implementation where torch has one, the plain one otherwise."""

import torch

from gentk.optim import fast


def test_adam_is_fused_on_the_cpu_and_matches_plain_adam():
    torch.manual_seed(0)
    a = torch.nn.Linear(8, 4)
    b = torch.nn.Linear(8, 4)
    b.load_state_dict(a.state_dict())
    fused = fast(torch.optim.Adam, a.parameters(), lr=1e-2)
    plain = torch.optim.Adam(b.parameters(), lr=1e-2, foreach=False)
    assert fused.defaults["fused"] is True
    x = torch.randn(16, 8)
    for _ in range(5):
        for net, opt in ((a, fused), (b, plain)):
            opt.zero_grad()
            net(x).square().mean().backward()
            opt.step()
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.allclose(p, q, atol=1e-6)


def test_rmsprop_has_no_fused_kernel_and_gets_foreach():
    opt = fast(torch.optim.RMSprop, torch.nn.Linear(2, 2).parameters(), lr=1e-3)
    assert opt.defaults["foreach"] is True and not opt.defaults.get("fused")


def test_an_optimizer_without_either_flag_is_built_plainly():
    class Plain(torch.optim.Optimizer):
        def __init__(self, params, lr=0.1):
            super().__init__(params, {"lr": lr})

    opt = fast(Plain, torch.nn.Linear(2, 2).parameters(), lr=0.5)
    assert isinstance(opt, Plain) and opt.defaults == {"lr": 0.5}


def test_an_explicit_choice_is_kept():
    opt = fast(torch.optim.Adam, torch.nn.Linear(2, 2).parameters(), lr=1e-3, foreach=False)
    assert opt.defaults["foreach"] is False and not opt.defaults.get("fused")
