"""TD-MPC on the pixel pendulum: environment, world model, agent, buffer, trainer."""
