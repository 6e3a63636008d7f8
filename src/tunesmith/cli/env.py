"""`tunesmith env`: versions and hardware, for bug reports.

Registered on the app by tunesmith.cli, in the order `tunesmith --help` lists them.
"""

from __future__ import annotations

import json

from tunesmith.cli.common import console


def env_info() -> None:
    """Versions and hardware, for bug reports."""
    from tunesmith.registry import collect_environment

    console.print_json(json.dumps(collect_environment()))
