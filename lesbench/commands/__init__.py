"""CLI sub-commands, one module per command family, found by ``lesbench.cli`` at start-up.

Each module defines ``COMMANDS: list[Command]``. Modules here must stay cheap to import:
argument definitions only, heavy imports inside ``run``. That is what keeps
``lesbench --help`` instant.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    #: Position in ``lesbench --help`` (the pipeline's order: data, prepare, train, metrics...).
    order: int = 50
    #: Sub-sub-commands (``lesbench weights list``) are built inside ``add_arguments``.
    description: str | None = None
