"""Learner: the distillation and DQN learners, their losses, batches and game schedule."""
