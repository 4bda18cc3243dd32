"""How a run's components are started and how they call one another: on a Ray cluster, or in this process."""
