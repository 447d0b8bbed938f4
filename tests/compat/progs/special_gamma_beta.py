"""Fitting Gamma and Beta distributions by maximum likelihood written with lgamma/digamma, as in
probabilistic-modelling scripts."""
import json

import disttorch as torch

torch.manual_seed(0)
N = 4000


def exponential(rate, shape):
    return -torch.log(torch.rand(shape)) / rate


# Gamma(3, rate 2) as the sum of three Exp(2); Beta(2, 5) as G2 / (G2 + G5)
gamma_data = sum(exponential(2.0, (N,)) for _ in range(3))
g2 = sum(exponential(1.0, (N,)) for _ in range(2))
g5 = sum(exponential(1.0, (N,)) for _ in range(5))
beta_data = g2 / (g2 + g5)


def gamma_log_prob(x, concentration, rate):
    return (torch.xlogy(concentration, rate) + torch.xlogy(concentration - 1, x) - rate * x
            - torch.lgamma(concentration))


def beta_log_prob(x, a, b):
    log_beta = torch.special.gammaln(a) + torch.special.gammaln(b) - torch.special.gammaln(a + b)
    return (a - 1) * torch.log(x) + (b - 1) * torch.log1p(-x) - log_beta


log_params = torch.zeros(2, requires_grad=True)
opt = torch.optim.Adam([log_params], lr=0.05)
for step in range(400):
    opt.zero_grad()
    conc, rate = log_params.exp()
    nll = -gamma_log_prob(gamma_data, conc, rate).mean()
    nll.backward()
    opt.step()
gamma_fit = log_params.exp().tolist()

ab = torch.zeros(2, requires_grad=True)
opt = torch.optim.Adam([ab], lr=0.05)
for step in range(400):
    opt.zero_grad()
    a, b = ab.exp()
    nll_beta = -beta_log_prob(beta_data, a, b).mean()
    nll_beta.backward()
    opt.step()
beta_fit = ab.exp().tolist()

# the analytic score of the Beta log-likelihood uses digamma; it must match autograd's
a, b = torch.tensor(2.5, requires_grad=True), torch.tensor(4.0, requires_grad=True)
ll = beta_log_prob(beta_data, a, b).mean()
ga, gb = torch.autograd.grad(ll, [a, b])
psi_ab = torch.digamma(a + b)
score_a = (torch.log(beta_data).mean() - torch.special.psi(a) + psi_ab).item()
score_b = (torch.log1p(-beta_data).mean() - torch.digamma(b) + psi_ab).item()

print(json.dumps({"gamma_fit": gamma_fit, "beta_fit": beta_fit, "autograd_score": [ga.item(), gb.item()],
                  "digamma_score": [score_a, score_b],
                  "mvlgamma": torch.mvlgamma(torch.tensor([2.5]), 3).item(),
                  "lgamma_int": torch.lgamma(torch.arange(1, 6)).tolist()}))
