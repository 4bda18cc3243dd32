"""The user's mistake, as one line: a flag, a file or a plan that cannot work, named with its fix.

Kept apart from pipelines/config.py so the runtime can refuse a plan without importing the configs."""


class ConfigError(ValueError):
    pass
