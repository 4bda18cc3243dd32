#!/usr/bin/env python
"""The door in from a shell: `python launch.py COMMAND --help` for each command's flags.

The same as the installed `atari-distill` and `python -m atari_distill`; the commands live in
atari_distill/cli.py."""

from atari_distill.cli import console_script, main  # noqa: F401 (main: for callers that import launch)

if __name__ == "__main__":
    console_script()
