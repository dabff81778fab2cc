"""TD-MPC configuration, in sections: environment, model, planning, learning, run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class EnvConfig:
    size: int = 28
    """Frame side in pixels (the paper's Table III)."""
    frames: int = 3
    """Stacked frames per observation."""
    action_repeat: int = 2
    """Simulator steps per decision (100 decisions per episode)."""

    @property
    def decisions(self) -> int:
        """Agent decisions in one 200-step episode."""
        return 200 // self.action_repeat


@dataclass
class ModelConfig:
    latent: int = 50
    """Latent state size."""
    hidden: int = 512
    """Hidden width of dynamics, reward, π and Q."""
    channels: int = 32
    """Encoder convolution channels."""


@dataclass
class PlanConfig:
    iterations: int = 3
    """MPPI iterations per decision."""
    samples: int = 256
    """Action sequences sampled per iteration."""
    elites: int = 32
    """Best sequences kept per iteration."""
    pi_samples: int = 13
    """Sequences rolled out with the policy prior π."""
    horizon: int = 3
    """Planning horizon (decisions)."""
    temperature: float = 0.5
    """MPPI score temperature."""
    momentum: float = 0.1
    """Mean update momentum."""
    min_std: float = 0.05
    """Smallest sampling std."""
    max_std: float = 2.0
    """Largest sampling std."""


@dataclass
class LearnConfig:
    batch: int = 128
    """Sequences per update."""
    lr: float = 3e-4
    """Adam learning rate."""
    horizon: int = 3
    """Update horizon (latent rollout length)."""
    rho: float = 0.5
    """Temporal weight ρ^t of the losses."""
    discount: float = 0.99
    """γ."""
    tau: float = 0.01
    """Target network EMA rate."""
    consistency: float = 2.0
    """Weight of the latent consistency loss."""
    reward: float = 0.5
    """Weight of the reward loss."""
    value: float = 0.1
    """Weight of the TD value loss."""
    grad_clip: float = 10.0
    """Gradient norm clip."""
    reward_scale: float = 0.1
    """Rewards are multiplied by this inside the learner (Pendulum: about −32 to 0 a step)."""
    seed_steps: int = 1000
    """Random-action environment steps before learning starts."""
    std_start: float = 0.5
    """Exploration std at the end of the seed phase."""
    std_end: float = 0.05
    """Exploration std after the schedule."""
    schedule_steps: int = 5000
    """Agent steps over which the std and planning horizon anneal."""


@dataclass
class TDMPCConfig:
    env: EnvConfig = field(default_factory=EnvConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    plan: PlanConfig = field(default_factory=PlanConfig)
    learn: LearnConfig = field(default_factory=LearnConfig)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TDMPCConfig:
        return cls(
            env=EnvConfig(**data.get("env", {})),
            model=ModelConfig(**data.get("model", {})),
            plan=PlanConfig(**data.get("plan", {})),
            learn=LearnConfig(**data.get("learn", {})),
        )
