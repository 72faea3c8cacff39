"""Tests of the output distributions in rllib_mwm.core.nets.dists."""

import math

import pytest
import torch

from rllib_mwm.core.nets.dists import (
    MSE,
    Bernoulli,
    OneHotST,
    SymlogMSE,
    TruncNormalST,
    kl_categorical,
    symexp,
    symlog,
)

# (mean, std) pairs covering the interior, both edges and a wide std.
CASES = [(0.0, 1.0), (0.9, 0.1), (-0.9, 0.1), (0.999, 0.1), (-0.3, 0.5)]


def _phi_cdf(x):
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def _trunc_pdf(x, mean, std):
    """Density of Normal(mean, std) truncated to [-1, 1], written out by hand."""
    z = _phi_cdf((1 - mean) / std) - _phi_cdf((-1 - mean) / std)
    u = (x - mean) / std
    return torch.exp(-0.5 * u**2) / (math.sqrt(2 * math.pi) * std * z)


def test_symlog_symexp():
    x = torch.tensor([-1e4, -3.0, -0.5, 0.0, 0.5, 3.0, 1e4], dtype=torch.float64)
    torch.testing.assert_close(symexp(symlog(x)), x)
    e = math.e
    torch.testing.assert_close(
        symlog(torch.tensor([e - 1, -(e**2 - 1)])), torch.tensor([1.0, -2.0])
    )


def test_symlog_mse_and_mse():
    dist = SymlogMSE(torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(
        dist.loss(torch.tensor([math.e - 1, -(math.e**2 - 1)])),
        torch.tensor([0.0, 4.0]),
    )
    torch.testing.assert_close(dist.mode(), torch.tensor([math.e - 1, 0.0]))
    pred = torch.tensor([[1.0, 2.0, 3.0], [0.0, -1.0, 0.5]])
    torch.testing.assert_close(
        MSE(pred, 1).loss(torch.zeros(2, 3)), torch.tensor([14.0, 1.25])
    )
    torch.testing.assert_close(MSE(pred).loss(torch.ones(2, 3)), (pred - 1) ** 2)
    with pytest.raises(AssertionError):
        SymlogMSE(torch.zeros(4, 1)).loss(torch.zeros(4))


@pytest.mark.parametrize("mean, std", CASES)
def test_trunc_normal_entropy_and_log_prob(mean, std):
    dist = TruncNormalST(
        torch.tensor([mean], dtype=torch.float64),
        torch.tensor([std], dtype=torch.float64),
    )
    x = torch.linspace(-1, 1, 200001, dtype=torch.float64)
    pdf = _trunc_pdf(x, mean, std)
    assert torch.trapezoid(pdf, x).item() == pytest.approx(1.0, abs=1e-6)
    entropy = -torch.trapezoid(pdf * torch.log(pdf), x)
    assert dist.entropy().item() == pytest.approx(entropy.item(), abs=1e-5)
    points = torch.tensor([[-0.7], [0.0], [0.95]], dtype=torch.float64)
    expected = torch.log(_trunc_pdf(points[:, 0], mean, std))
    torch.testing.assert_close(dist.log_prob(points), expected)


@pytest.mark.parametrize("mean, std", CASES)
def test_trunc_normal_against_scipy(mean, std):
    stats = pytest.importorskip("scipy.stats")
    a, b = (-1 - mean) / std, (1 - mean) / std
    ref = stats.truncnorm(a, b, loc=mean, scale=std)
    dist = TruncNormalST(torch.tensor([mean] * 3), torch.tensor([std] * 3))
    assert dist.entropy().item() == pytest.approx(3 * ref.entropy(), rel=1e-4, abs=1e-4)
    torch.manual_seed(0)
    samples = dist.rsample((20000,)).double()  # (20000, 3)
    assert samples.mean().item() == pytest.approx(ref.mean(), abs=4 * ref.std() / 245)
    quantiles = torch.quantile(
        samples[:, 0], torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    )
    expected = torch.tensor(ref.ppf([0.1, 0.5, 0.9]))
    torch.testing.assert_close(quantiles, expected, atol=0.05 * std + 1e-3, rtol=0)


def test_trunc_normal_samples_bounded_and_differentiable():
    mean = torch.tensor([[0.0, 0.999, -0.999, 0.5]], requires_grad=True)
    std = torch.tensor([[1.0, 0.1, 0.1, 0.3]], requires_grad=True)
    samples = TruncNormalST(mean, std).rsample((5000,))
    assert samples.shape == (5000, 1, 4)
    assert samples.abs().max() <= 1 - 1e-6
    samples.sum().backward()
    assert (mean.grad != 0).all() and (std.grad != 0).all()


@pytest.mark.parametrize("mean, std", CASES)
def test_trunc_normal_pathwise_gradient(mean, std):
    """Autograd d sample / d (mean, std) matches finite differences at fixed noise."""
    params = torch.tensor([mean, std], dtype=torch.float64, requires_grad=True)

    def draw(p):
        torch.manual_seed(3)
        return TruncNormalST(p[:1], p[1:], clip=0.0).rsample((64,))[:, 0]

    grads = torch.autograd.functional.jacobian(draw, params)  # (64, 2)
    delta = 1e-6
    for i in range(2):
        step = torch.zeros(2, dtype=torch.float64)
        step[i] = delta
        with torch.no_grad():
            numeric = (draw(params + step) - draw(params - step)) / (2 * delta)
        torch.testing.assert_close(grads[:, i], numeric, atol=1e-5, rtol=1e-4)


def test_trunc_normal_mode_clipped_straight_through():
    mean = torch.tensor([0.3, 1.0, -1.0], requires_grad=True)
    mode = TruncNormalST(mean, torch.full((3,), 0.5)).mode()
    torch.testing.assert_close(mode, torch.tensor([0.3, 1 - 1e-6, -1 + 1e-6]))
    mode.sum().backward()
    torch.testing.assert_close(mean.grad, torch.ones(3))


def test_one_hot_straight_through():
    torch.manual_seed(0)
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.25]])).requires_grad_()
    dist = OneHotST(logits)
    sample = dist.sample()
    assert sorted(sample[0].tolist()) == pytest.approx([0.0, 0.0, 1.0])
    weights = torch.tensor([[1.0, -2.0, 3.0]])
    (sample * weights).sum().backward()
    probs = torch.tensor([0.5, 0.25, 0.25])
    # gradient of sum(w * probs): p_i * (w_i - sum_j p_j w_j)
    expected = probs * (weights[0] - (probs * weights[0]).sum())
    torch.testing.assert_close(logits.grad[0], expected)
    freq = torch.stack([OneHotST(logits.detach()).sample() for _ in range(4000)])
    torch.testing.assert_close(freq.mean(0)[0], probs, atol=0.03, rtol=0)
    torch.testing.assert_close(dist.mode(), torch.tensor([[1.0, 0.0, 0.0]]))
    assert dist.entropy().item() == pytest.approx(1.5 * math.log(2), rel=1e-6)
    onehot = torch.tensor([[0.0, 1.0, 0.0]])
    assert dist.log_prob(onehot).item() == pytest.approx(math.log(0.25), rel=1e-6)


def test_bernoulli_soft_label_loss():
    dist = Bernoulli(torch.tensor([0.3, -2.0]))
    target = torch.tensor([0.7, 0.99])
    sig = [1 / (1 + math.exp(-0.3)), 1 / (1 + math.exp(2.0))]
    expected = [
        -(t * math.log(s) + (1 - t) * math.log(1 - s))
        for t, s in zip([0.7, 0.99], sig, strict=True)
    ]
    torch.testing.assert_close(dist.loss(target), torch.tensor(expected))
    torch.testing.assert_close(dist.mean(), torch.tensor(sig))
    torch.testing.assert_close(dist.mode(), torch.tensor([1.0, 0.0]))


def test_kl_categorical_by_hand():
    p = torch.tensor([[[0.5, 0.5], [0.9, 0.1]]])  # (1, stoch 2, classes 2)
    q = torch.tensor([[[0.25, 0.75], [0.5, 0.5]]])
    expected = (
        0.5 * math.log(0.5 / 0.25)
        + 0.5 * math.log(0.5 / 0.75)
        + 0.9 * math.log(0.9 / 0.5)
        + 0.1 * math.log(0.1 / 0.5)
    )
    kl = kl_categorical(torch.log(p) + 3.0, torch.log(q))  # logits up to a constant
    assert kl.shape == (1,)
    assert kl.item() == pytest.approx(expected, rel=1e-5)
    assert kl_categorical(torch.log(q), torch.log(q)).item() == pytest.approx(
        0, abs=1e-7
    )
