"""Ray infrastructure: the runtime, placement of every actor, learner replica groups, the checkpoint registry."""
