"""`python -m atari_distill COMMAND ...`: the same as `python launch.py COMMAND ...`."""

from atari_distill.cli import console_script

if __name__ == "__main__":
    console_script()
