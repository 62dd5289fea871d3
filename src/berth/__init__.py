"""berth: build, run and deploy EPICS IOCs as containers."""

__version__ = "0.1.0"
