"""torch.special helpers as they appear in everyday scripts: normal CDFs, entropies, von Mises normalisers,
polygamma-based variances and a Bessel window."""
import json

import disttorch as torch

S = torch.special

z = torch.tensor([-1.96, 0.0, 1.0, 3.0])
cdf = S.ndtr(z)
log_cdf_tail = S.log_ndtr(torch.tensor([-20.0]))
quantiles = S.ndtri(torch.tensor([0.025, 0.5, 0.975]))

probs = torch.softmax(torch.tensor([[2.0, 1.0, 0.1], [0.0, 0.0, 0.0]]), dim=-1)
entropy = S.entr(probs).sum(-1)

kappa = torch.tensor([0.5, 5.0, 50.0])
log_i0 = torch.log(S.i0e(kappa)) + kappa  # stable log I0(kappa) of the von Mises normaliser

trigamma = torch.polygamma(1, torch.tensor([1.0, 10.0]))  # variance of log-Gamma variables
kaiser = torch.i0(8.0 * torch.sqrt(1 - torch.linspace(-1, 1, 9) ** 2)) / torch.i0(torch.tensor(8.0))
logits = S.logit(torch.tensor([0.1, 0.5, 0.9]), eps=1e-6)
lse = S.logsumexp(torch.tensor([[1000.0, 1000.0]]), dim=1)
x_log_y = S.xlogy(torch.tensor([0.0, 2.0]), torch.tensor([0.0, 3.0]))
cheb = S.chebyshev_polynomial_t(torch.tensor([0.5]), 3)

print(json.dumps({"cdf": cdf.tolist(), "log_cdf_tail": log_cdf_tail.item(), "quantiles": quantiles.tolist(),
                  "entropy": entropy.tolist(), "log_i0": log_i0.tolist(), "trigamma": trigamma.tolist(),
                  "kaiser": kaiser.tolist(), "logits": logits.tolist(), "lse": lse.item(),
                  "xlogy": x_log_y.tolist(), "erfcx": S.erfcx(torch.tensor([10.0])).item(),
                  "cheb": cheb.item(), "bessel_j0": S.bessel_j0(torch.tensor([2.404825557695773])).item()}))
