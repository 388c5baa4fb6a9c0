"""The ``cartsync`` command. Each subcommand lives in its own module and loads on use."""

from __future__ import annotations

import importlib
from typing import Any

import click

from cartsync.worker.errors import CartsyncError

#: Subcommand name -> "module:attribute" of its click command.
COMMANDS = {
    "validate": "cartsync.worker.cli.validate:validate",
    "enqueue": "cartsync.worker.cli.enqueue:enqueue",
    "sandbox": "cartsync.sandbox.cli:sandbox",
    "dlq": "cartsync.worker.cli.dlq:dlq",
    "status": "cartsync.worker.cli.status:status",
    "metrics": "cartsync.worker.cli.metrics:metrics",
    "demo": "cartsync.worker.cli.demo:demo",
    "serve": "cartsync.worker.cli.serve:serve",
}


class CartsyncFailure(click.ClickException):
    """A CartsyncError as click prints it: ``cartsync: message`` on stderr, exit 1."""

    def show(self, file: Any = None) -> None:
        click.echo(f"cartsync: {self.format_message()}", err=True)


class LazyGroup(click.Group):
    """A group whose subcommands are imported only when asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name in COMMANDS if self._load(name) is not None)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._load(cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        """Run the subcommand; a CartsyncError becomes one line on stderr and exit 1."""
        try:
            return super().invoke(ctx)
        except CartsyncError as exc:
            raise CartsyncFailure(str(exc)) from None

    @staticmethod
    def _load(name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:  # not written yet; any other missing module is a bug
                return None
            raise
        command: click.Command = getattr(module, attr)
        return command


def _print_versions(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from cartsync.worker.versions import version_lines

    click.echo("\n".join(version_lines()))
    ctx.exit()


@click.group(cls=LazyGroup)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_versions,
    help="Show the versions of cartsync, celery, kombu, redis-py and Python, and exit.",
)
def cli() -> None:
    """cartsync keeps seQura's Order Update API in step with your orders."""


def main(argv: list[str] | None = None) -> Any:
    """Console entry point: a CartsyncError becomes one line on stderr, never a traceback."""
    return cli.main(args=argv, prog_name="cartsync", standalone_mode=True)
