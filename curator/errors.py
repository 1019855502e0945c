"""Exceptions a user may see; each message says what went wrong and where."""

from __future__ import annotations


class CuratorError(Exception):
    """Base class for errors curator reports to the user without a traceback."""


class ConfigError(CuratorError):
    """A pipeline file, step or parameter is invalid."""


class PluginError(CuratorError):
    """A plugin could not be loaded or registered something invalid."""


class BadInputError(CuratorError):
    """An input file or row is invalid and the run is set to fail on bad input."""


class StepError(CuratorError):
    """A step raised while processing data and the run is set to fail fast."""
