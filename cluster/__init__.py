"""Cluster: run configs, run directories, and turning a run into Ray actors."""
