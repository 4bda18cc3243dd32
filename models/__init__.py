"""What actors and learners both hold: the network presets and the one checkpoint format."""
