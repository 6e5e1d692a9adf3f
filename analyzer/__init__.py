"""nta: the command line, pipeline wiring, verdicts and reports. The only package that talks to the user."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("nta")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+src"
