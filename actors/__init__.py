"""Teacher actors: environments, teachers, and the rollouts that label frames."""
