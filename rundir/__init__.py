"""The run directory's format: its files (RunDir) and how a run ended (Summary), below every
command that writes one and every reader (report, zoo) that reads one."""
