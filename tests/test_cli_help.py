"""Every command's --help renders, and no help text loses words to rich markup: typer renders help
through rich, which takes `[reference]` or `[default: ...]` for a style tag and drops it, so a
bracket that starts like a tag must be written `\\[`."""

from __future__ import annotations

import pytest
import typer
from rich.markup import RE_TAGS
from typer.testing import CliRunner

from kdasr.cli import app


def _commands(cmd, path=("kdasr",)):
    yield path, cmd
    for name, sub in sorted(getattr(cmd, "commands", {}).items()):
        yield from _commands(sub, (*path, name))


def _eaten(text: str) -> list[str]:
    """Tags rich would swallow: the ones not escaped by an odd number of backslashes."""
    return [m.group(0) for m in RE_TAGS.finditer(text or "") if len(m.group(2)) % 2 == 0]


def test_no_help_text_reads_as_rich_markup():
    eaten = []
    for path, cmd in _commands(typer.main.get_command(app)):
        texts = [("help", cmd.help), *((p.name, getattr(p, "help", None)) for p in cmd.params)]
        eaten += [f"{' '.join(path)} {where}: {tag}" for where, text in texts for tag in _eaten(text)]
    assert not eaten, "escape these as \\[ ... ]:\n" + "\n".join(eaten)


@pytest.mark.slow
def test_every_help_renders_and_keeps_its_brackets():
    runner = CliRunner()
    for path, _ in _commands(typer.main.get_command(app)):
        res = runner.invoke(app, [*path[1:], "--help"])
        assert res.exit_code == 0 and "Usage:" in res.output, (path, res.output[-500:])
    wide = {"COLUMNS": "250"}  # no line break inside the phrases below
    bert = runner.invoke(app, ["teacher", "bert", "--help"], env=wide).output
    assert "[default: 3000; no step limit when --minutes is given]" in bert
    assert "pip install 'kdasr[reference]'" in runner.invoke(app, ["eval-reference", "--help"], env=wide).output
