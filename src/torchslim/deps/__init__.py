"""torchslim.deps: pip config, requirements, locking for the target, dev audit,
verified wheel download and installation into an image tree."""

from torchslim.deps.audit import DEV_ONLY, DevFinding, audit, format_audit, format_lock
from torchslim.deps.install import Scheme, install_wheel
from torchslim.deps.lock import Lock, LockedWheel, Target, read_lock, resolve
from torchslim.deps.pipconf import IndexSettings, load_pip_settings
from torchslim.deps.requirements import Requirements, parse_requirements, read_requirements
from torchslim.deps.wheels import fetch_wheels

__all__ = [
    "DEV_ONLY",
    "DevFinding",
    "IndexSettings",
    "Lock",
    "LockedWheel",
    "Requirements",
    "Scheme",
    "Target",
    "audit",
    "fetch_wheels",
    "format_audit",
    "format_lock",
    "install_wheel",
    "load_pip_settings",
    "parse_requirements",
    "read_lock",
    "read_requirements",
    "resolve",
]
