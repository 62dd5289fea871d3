"""`berth check`: validate a services repository before deploying."""

from berth.check.repo import CheckReport, check_repo

__all__ = ["CheckReport", "check_repo"]
