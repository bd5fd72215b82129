"""Exceptions that carry what a user needs to fix their input: the file, sample or config key."""


class ModeflowError(Exception):
    """Base class: every error modeflow raises on bad input derives from it."""


class ConfigError(ModeflowError):
    """A config key is unknown, missing, of the wrong type or inconsistent with another key."""


class InputDataError(ModeflowError):
    """An input file or sample is malformed (missing column, bad caption, corrupt tar, ...)."""
