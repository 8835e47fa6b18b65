"""One exception tree for the package; the CLI maps each error to an exit status and one line on stderr."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    OK = 0
    FAILURE = 1
    USAGE = 2  # bad input: usage errors, unreadable or invalid files, bad option values


class UniEcgError(Exception):
    """Root of the package's errors. ``str(err)`` is the one line the CLI prints."""

    exit_code: ExitCode = ExitCode.FAILURE


class InputError(UniEcgError):
    """Bad input from the user: a missing or malformed file, an unknown lead, an impossible rate, a bad option."""

    exit_code = ExitCode.USAGE


class RecordError(InputError):
    """A WFDB record that cannot be read or does not hold a usable ECG."""


class LeadError(InputError):
    """A record without the leads that an operation needs, or with an unknown lead name."""


class ConfigError(InputError):
    """An invalid configuration value or a checkpoint folder that is not one."""


class DeviceError(UniEcgError):
    """An acquisition device that cannot be opened, stops answering or sends unusable data."""

    exit_code = ExitCode.USAGE


class BackendUnavailableError(UniEcgError):
    """An optional backend (onnxruntime, TensorRT, CUDA) that is not installed or not usable here."""

    exit_code = ExitCode.USAGE


class BundleError(InputError):
    """An edge bundle that is incomplete, tampered with or of an unknown format."""
