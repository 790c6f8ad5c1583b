"""`hywu edits`: list the edit families with example instructions."""

from __future__ import annotations

from typing import Any

from hywu_cli.cli import _common
from hywu_cli.cli._common import JsonOption


EXAMPLES_PER_FAMILY = 2


def edits(json_output: JsonOption = False) -> None:
    """List the edits the models are trained for, with two example instructions each.

    Instructions far from every family still run, with a warning (or fail with --strict).
    """
    with _common.command_session(verbose=False, quiet=False, json_output=json_output) as reporter:
        from hywu_cli.phrasings import FAMILY_PHRASINGS

        rows = [
            {
                "family": entry.family,
                "title": entry.title,
                "description": entry.description,
                "examples": example_phrasings(entry),
            }
            for entry in FAMILY_PHRASINGS.values()
        ]
        if json_output:
            reporter.result("", {"families": rows})
            return

        from rich.table import Table
        from rich.text import Text

        table = Table(title=f"{len(rows)} edit families", show_lines=True)
        table.add_column("edit", style="bold")
        table.add_column("what it does")
        table.add_column("try", overflow="fold")
        for row in rows:
            examples = "\n".join(f'"{text}"' for text in row["examples"])
            table.add_row(Text(row["title"]), Text(row["description"]), Text(examples))
        reporter.console().print(table)


def example_phrasings(entry: Any, count: int = EXAMPLES_PER_FAMILY) -> list[str]:
    """Return `count` training phrasings of a family, preferring the "normal" grade over "slight" and "strong"."""
    ranked = sorted(entry.train, key=lambda phrasing: phrasing.grade != "normal")
    return [phrasing.text for phrasing in ranked[:count]]
