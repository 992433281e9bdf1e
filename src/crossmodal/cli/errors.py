"""The one place where crossmodal errors become CLI exit codes and messages."""

from __future__ import annotations

from typing import Any

import click

from ..errors import ConfigError, CrossmodalError, InputError, ModelError, SpaceMismatch, StoreError

__all__ = ["EXIT_CODES", "CrossmodalGroup", "exit_code"]

#: exception class -> exit status (first match wins); click's own usage errors exit with 2
EXIT_CODES: list[tuple[type[CrossmodalError], int]] = [
    (ConfigError, 2),
    (InputError, 3),
    (ModelError, 4),
    (SpaceMismatch, 5),
    (StoreError, 6),
    (CrossmodalError, 1),
]


def exit_code(exc: CrossmodalError) -> int:
    for cls, code in EXIT_CODES:
        if isinstance(exc, cls):
            return code
    return 1


class CrossmodalGroup(click.Group):
    """A click group that prints crossmodal errors as one line and exits with their code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CrossmodalError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exit_code(exc))
