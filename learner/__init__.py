"""Learner: networks, losses, checkpoints and the actor that trains students."""
