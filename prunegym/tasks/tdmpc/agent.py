"""The TD-MPC agent: MPPI planning with the world model, and the TD-MPC update.

``act`` plans (or uses π alone), ``update`` takes one gradient step on a batch of sequences,
``state_dict``/``load_state_dict`` save everything needed to resume.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from prunegym.tasks.tdmpc.config import TDMPCConfig
from prunegym.tasks.tdmpc.world_model import WorldModel


class TDMPC:
    """Hansen et al. 2022, with the configuration sections of :class:`TDMPCConfig`."""

    def __init__(self, config: TDMPCConfig | None = None, seed: int = 0) -> None:
        self.config = config or TDMPCConfig()
        torch.manual_seed(seed)
        self.model = WorldModel(self.config)
        self.target = copy.deepcopy(self.model).requires_grad_(False)
        learn = self.config.learn
        pi_parameters = list(self.model.pi_head.parameters())
        pi_ids = {id(p) for p in pi_parameters}
        self.optimizer = torch.optim.Adam(
            [p for p in self.model.parameters() if id(p) not in pi_ids], lr=learn.lr
        )
        self.pi_optimizer = torch.optim.Adam(pi_parameters, lr=learn.lr)
        self.generator = torch.Generator().manual_seed(seed)
        self._previous_mean: torch.Tensor | None = None

    # -- acting -------------------------------------------------------------------------------
    def reset_plan(self) -> None:
        """Forget the warm start (call at the start of each episode)."""
        self._previous_mean = None

    @torch.no_grad()
    def act(
        self, observation: torch.Tensor, plan: bool = True, std: float = 0.0, horizon: int = 0
    ) -> torch.Tensor:
        """Actions ``(B, 1)`` in [−1, 1] for observations ``(B, frames, size, size)``.

        Args:
            plan: MPPI planning; otherwise π.
            std: Exploration noise added to the chosen action.
            horizon: Planning horizon (0: the configured one).
        """
        z = self.model.encode(observation)
        if plan:
            action = self.plan(z, horizon or self.config.plan.horizon)
        else:
            action = self.model.pi(z)
        if std > 0:
            noise = self._normal(action.shape).to(action.device) * std
            action = action + noise
        return action.clamp(-1.0, 1.0)

    @torch.no_grad()
    def _estimate_value(self, z: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Σ γ^t R(z_t, a_t) + γ^H min Q(z_H, π(z_H)); ``actions (H, N, 1)``, ``z (N, latent)``."""
        gamma = self.config.learn.discount
        value, discount = z.new_zeros(z.shape[0], 1), 1.0
        for action in actions:
            value = value + discount * self.model.reward(z, action)
            z = self.model.next(z, action)
            discount *= gamma
        q1, q2 = self.model.q(z, self.model.pi(z))
        return value + discount * torch.min(q1, q2)

    @torch.no_grad()
    def plan(self, z: torch.Tensor, horizon: int) -> torch.Tensor:
        """MPPI over ``horizon`` steps for each of the ``B`` latents ``z (B, latent)``."""
        cfg = self.config.plan
        batch = z.shape[0]
        # π rollouts: (H, B, P, 1)
        z_pi = z.repeat_interleave(cfg.pi_samples, dim=0)
        pi_actions = []
        for _ in range(horizon):
            action = self.model.pi(z_pi)
            pi_actions.append(action)
            z_pi = self.model.next(z_pi, action)
        pi_actions = torch.stack(pi_actions).reshape(horizon, batch, cfg.pi_samples, 1)

        mean = z.new_zeros(horizon, batch, 1)
        previous = self._previous_mean
        if previous is not None and previous.shape[1] == batch:  # warm start, shifted by one
            overlap = min(horizon, previous.shape[0]) - 1
            if overlap > 0:
                mean[:overlap] = previous[1 : overlap + 1]
        std = z.new_full((horizon, batch, 1), cfg.max_std)
        z_all = z.repeat_interleave(cfg.samples + cfg.pi_samples, dim=0)
        for _ in range(cfg.iterations):
            noise = self._normal((horizon, batch, cfg.samples, 1)).to(z.device)
            sampled = (mean.unsqueeze(2) + std.unsqueeze(2) * noise).clamp(-1, 1)
            actions = torch.cat([sampled, pi_actions], dim=2)  # (H, B, S + P, 1)
            flat = actions.reshape(horizon, -1, 1)
            value = self._estimate_value(z_all, flat).reshape(batch, -1)
            value = torch.nan_to_num(value, nan=-1e6)
            elite_value, elite_index = value.topk(cfg.elites, dim=1)
            elites = torch.gather(
                actions, 2, elite_index[None, :, :, None].expand(horizon, -1, -1, 1)
            )
            score = torch.softmax(cfg.temperature * (elite_value - elite_value.max(1, True)[0]), 1)
            weights = score[None, :, :, None]
            new_mean = (weights * elites).sum(2)
            new_std = ((weights * (elites - new_mean.unsqueeze(2)) ** 2).sum(2)).sqrt()
            mean = cfg.momentum * mean + (1 - cfg.momentum) * new_mean
            std = new_std.clamp(cfg.min_std, cfg.max_std)
        self._previous_mean = mean
        pick = torch.multinomial(score.cpu(), 1, generator=self.generator).to(z.device)  # (B, 1)
        chosen = torch.gather(elites[0], 1, pick[:, :, None]).squeeze(1)  # (B, 1)
        return chosen

    def _normal(self, shape) -> torch.Tensor:
        """Standard normal noise drawn on the CPU from the agent's generator (the same draws
        whatever device the model is on)."""
        return torch.randn(shape, generator=self.generator, device="cpu")

    # -- learning -----------------------------------------------------------------------------
    def _td_target(self, next_z: torch.Tensor, reward: torch.Tensor) -> torch.Tensor:
        q1, q2 = self.target.q(next_z, self.model.pi(next_z))
        return reward + self.config.learn.discount * torch.min(q1, q2)

    def losses(self, observations, actions, rewards) -> dict[str, torch.Tensor]:
        """The world-model losses on ``obs (H+1, B, ...)``, ``actions (H, B, 1)``,
        ``rewards (H, B)``: consistency, reward, value (ρ^t-weighted sums), the weighted total,
        and the rolled-out latents ``(H, B, latent)`` (detached) for the policy update."""
        learn = self.config.learn
        horizon = actions.shape[0]
        rewards = rewards.unsqueeze(-1) * learn.reward_scale
        with torch.no_grad():
            next_obs = observations[1:].flatten(0, 1)
            next_z = self.model.encode(next_obs).unflatten(0, (horizon, -1))
            target_z = self.target.encode(next_obs).unflatten(0, (horizon, -1))
            td_targets = [self._td_target(next_z[t], rewards[t]) for t in range(horizon)]
        z = self.model.encode(observations[0])
        latents = []
        consistency = reward_loss = value_loss = torch.zeros(())
        for t in range(horizon):
            weight = learn.rho**t
            latents.append(z.detach())
            q1, q2 = self.model.q(z, actions[t])
            predicted_reward = self.model.reward(z, actions[t])
            z = self.model.next(z, actions[t])
            consistency = consistency + weight * (z - target_z[t]).pow(2).mean()
            reward_loss = reward_loss + weight * F.mse_loss(predicted_reward, rewards[t])
            value_loss = value_loss + weight * (
                F.mse_loss(q1, td_targets[t]) + F.mse_loss(q2, td_targets[t])
            )
        total = (
            learn.consistency * consistency + learn.reward * reward_loss + learn.value * value_loss
        ) / horizon
        return {
            "consistency": consistency,
            "reward": reward_loss,
            "value": value_loss,
            "total": total,
            "latents": torch.stack(latents),
        }

    def update(self, observations, actions, rewards) -> dict[str, float]:
        """One TD-MPC update (world model, then π, then the target EMA); returns the losses
        (consistency, reward, value, pi, total) before the step."""
        self.model.train()
        losses = self.losses(observations, actions, rewards)
        self.optimizer.zero_grad(set_to_none=True)
        losses["total"].backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.learn.grad_clip)
        self.optimizer.step()
        pi_loss = self.update_pi(losses["latents"])
        self._update_target()
        self.model.eval()
        result = {k: float(v.detach()) for k, v in losses.items() if k != "latents"}
        result["pi"] = pi_loss
        return result

    def update_pi(self, latents: torch.Tensor) -> float:
        """Policy loss −min Q(z, π(z)), ρ^t-weighted over the ``(H, B, latent)`` latents."""
        learn = self.config.learn
        self.model.Q.requires_grad_(False)
        loss = 0.0
        for t, z in enumerate(latents):
            q1, q2 = self.model.q(z, self.model.pi(z))
            loss = loss - learn.rho**t * torch.min(q1, q2).mean()
        loss = loss / len(latents)
        self.pi_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.pi_head.parameters(), learn.grad_clip)
        self.pi_optimizer.step()
        self.model.Q.requires_grad_(True)
        return float(loss.detach())

    @torch.no_grad()
    def _update_target(self) -> None:
        tau = self.config.learn.tau
        for target, online in zip(self.target.parameters(), self.model.parameters(), strict=True):
            target.lerp_(online, tau)

    # -- persistence --------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "config": self.config.to_dict(),
            "model": self.model.state_dict(),
            "target": self.target.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "pi_optimizer": self.pi_optimizer.state_dict(),
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.target.load_state_dict(state["target"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.pi_optimizer.load_state_dict(state["pi_optimizer"])
        self.generator.set_state(state["generator"])
