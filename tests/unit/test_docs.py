"""The README stays the reference: every setting and every CLI command is documented."""

from __future__ import annotations

from dataclasses import fields

from click.testing import CliRunner

from gembus.cli import main
from gembus.settings import Settings
from tests.conftest import REPO

README = (REPO / "README.md").read_text()


def test_every_setting_is_in_the_readme_table() -> None:
    missing = [f.name for f in fields(Settings) if f"`GEMBUS_{f.name.upper()}`" not in README]
    assert not missing


def test_every_command_has_help_and_is_documented() -> None:
    runner = CliRunner()
    commands = [
        ("serve",),
        ("db", "upgrade"),
        ("demo", "load"),
        ("partner", "add"),
        ("partner", "list"),
        ("partner", "set-password"),
        ("worker",),
        ("outbox", "list"),
        ("outbox", "retry"),
        ("outbox", "purge"),
        ("events", "publish"),
        ("evse", "pull"),
        ("evse", "pulls"),
        ("sdr", "delivery", "set"),
        ("sdr", "delivery", "list"),
        ("sdr", "deliver-batches"),
        ("authorization", "settings", "show"),
        ("authorization", "settings", "set"),
        ("authorization", "settings", "reset"),
        ("reservation", "list"),
    ]
    for command in commands:
        result = runner.invoke(main, [*command, "--help"])
        assert result.exit_code == 0 and "Usage:" in result.output
        assert f"gembus {' '.join(command)}" in README
