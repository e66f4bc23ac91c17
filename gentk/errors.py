"""The GentkError family: the core raises these, only the CLI turns them into messages."""


class GentkError(Exception):
    """Base of every error gentk reports to a user as one line."""

    exit_code = 1


class UsageError(GentkError):
    """The command line asked for something impossible (exit 2, like click)."""

    exit_code = 2


class PluginError(GentkError):
    """A plugin failed to load or raised inside a hook."""


class UnknownModelError(UsageError):
    """No registered plugin provides the requested model."""


class DataError(GentkError):
    """A dataset could not be found, fetched, verified or decoded."""


class RunDirError(GentkError):
    """A run directory is missing, locked, or would be overwritten."""


class CheckpointError(GentkError):
    """A checkpoint is missing, corrupt, or does not match the model."""


class ConfigMismatchError(CheckpointError):
    """--resume was asked with options that differ from the run's."""
