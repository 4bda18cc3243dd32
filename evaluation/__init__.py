"""Evaluation in one home: the protocol (episodes, epsilon, seed ranges, env mode), playing episodes, held-out
frames, comparisons and their statistics, the score cache, a run's learning curve, and the evaluate command."""
