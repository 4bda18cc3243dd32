"""`launch.py report`: report.md and PNG plots from one or more run directories.

Everything is read from the run directories (metrics.jsonl, summary.json, timeline.jsonl,
registry.json), never from a live run, so a report can be made on any machine from copied
runs. Each plot has a table in report.md with the numbers drawn in it. Games never share a
score axis: a plot over several games has a panel per game.

A module per section of the report; runs.py reads the run directories, tables.py writes the
markdown tables, axes.py and curves.py hold the drawing the sections share.
"""

from atari_distill.ui.report.curves import FINAL_STAR
from atari_distill.ui.report.runs import ReportError
from atari_distill.ui.report.write import write_report

__all__ = ["FINAL_STAR", "ReportError", "write_report"]
