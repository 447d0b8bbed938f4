"""REINFORCE on CartPole, with a tiny built-in CartPole (no gym needed).

The environment follows the classic control task (CartPole-v0: +1 per step, at most 200 steps, the
episode ends when the pole leans past 12 degrees or the cart leaves [-2.4, 2.4]). The policy is a small
MLP giving action logits; actions are sampled from ``distributions.Categorical`` and the loss is
``-(log_prob * normalised discounted return).sum()``. Training stops when the average return of the
last 100 episodes reaches 195 (the task's "solved" threshold).

    python examples/reinforce_cartpole.py
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np

import disttorch as torch
from disttorch import nn
from disttorch.distributions import Categorical


class CartPole:
    """Cart-pole balancing with the dynamics and limits of the classic control task (Euler integration)."""

    gravity, masscart, masspole, length, force_mag, tau = 9.8, 1.0, 0.1, 0.5, 10.0, 0.02
    theta_limit, x_limit, max_steps = 12 * 2 * math.pi / 360, 2.4, 200

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.state = np.zeros(4)
        self.steps = 0

    def reset(self) -> np.ndarray:
        self.state = self.rng.uniform(-0.05, 0.05, 4)
        self.steps = 0
        return self.state.astype(np.float32)

    def step(self, action: int) -> tuple:
        x, x_dot, theta, theta_dot = self.state
        force = self.force_mag if action == 1 else -self.force_mag
        total_mass = self.masspole + self.masscart
        pml = self.masspole * self.length
        cos, sin = math.cos(theta), math.sin(theta)
        temp = (force + pml * theta_dot ** 2 * sin) / total_mass
        theta_acc = (self.gravity * sin - cos * temp) / (
            self.length * (4.0 / 3.0 - self.masspole * cos ** 2 / total_mass))
        x_acc = temp - pml * theta_acc * cos / total_mass
        x, x_dot = x + self.tau * x_dot, x_dot + self.tau * x_acc
        theta, theta_dot = theta + self.tau * theta_dot, theta_dot + self.tau * theta_acc
        self.state = np.array([x, x_dot, theta, theta_dot])
        self.steps += 1
        fallen = abs(x) > self.x_limit or abs(theta) > self.theta_limit
        done = fallen or self.steps >= self.max_steps
        return self.state.astype(np.float32), 1.0, done


class Policy(nn.Module):
    def __init__(self, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, hidden), nn.Tanh(), nn.Linear(hidden, 2))

    def forward(self, obs):
        return self.net(obs)


def discounted_returns(rewards: list, gamma: float) -> np.ndarray:
    out, running = np.zeros(len(rewards), dtype=np.float32), 0.0
    for i in range(len(rewards) - 1, -1, -1):
        running = rewards[i] + gamma * running
        out[i] = running
    return out


def run_episode(env: CartPole, policy: Policy) -> tuple:
    obs, done, log_probs, rewards = env.reset(), False, [], []
    while not done:
        dist = Categorical(logits=policy(torch.from_numpy(obs)))
        action = dist.sample()
        log_probs.append(dist.log_prob(action))
        obs, reward, done = env.step(int(action.item()))
        rewards.append(reward)
    return torch.stack(log_probs), rewards


def main(argv=None) -> float:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--episodes", type=int, default=1500, help="give up after this many episodes")
    p.add_argument("--gamma", type=float, default=0.99)
    p.add_argument("--lr", type=float, default=5e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--target", type=float, default=195.0, help="average return over 100 episodes to stop at")
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)
    env, policy = CartPole(args.seed), Policy()
    optimizer = torch.optim.Adam(policy.parameters(), lr=args.lr)
    returns, t0, avg = [], time.perf_counter(), 0.0
    for episode in range(1, args.episodes + 1):
        log_probs, rewards = run_episode(env, policy)
        g = discounted_returns(rewards, args.gamma)
        g = (g - g.mean()) / (g.std() + 1e-8)
        loss = -(log_probs * torch.from_numpy(g)).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        returns.append(sum(rewards))
        avg = float(np.mean(returns[-100:]))
        if episode % 50 == 0:
            print(f"episode {episode:4d}  return {returns[-1]:5.0f}  average of last 100 {avg:6.1f}", flush=True)
        if len(returns) >= 100 and avg >= args.target:
            print(f"solved after {episode} episodes: average return {avg:.1f} over the last 100 "
                  f"({time.perf_counter() - t0:.1f} s)")
            return avg
    print(f"not solved after {args.episodes} episodes: average return {avg:.1f}")
    return avg


if __name__ == "__main__":
    main()
