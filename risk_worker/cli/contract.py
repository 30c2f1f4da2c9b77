"""``risk-worker contract --out docs/contract/ [--check]``: write (or compare) the
machine-readable contract, ``asyncapi.yaml`` and ``schemas/<Message>.json``, generated from the
msgspec Structs with the examples of subjects.md (:mod:`risk_worker.wire.contract`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from risk_worker.cli.common import console, err
from risk_worker.wire.contract import SCHEMA_DIR, render_contract

REPO_SUBJECTS = Path(__file__).resolve().parents[2] / "subjects.md"
"""subjects.md of the source tree the package runs from (an editable install, a checkout)."""
REGENERATE = "risk-worker contract --out docs/contract/"


def stale_files(out: Path, files: dict[str, str]) -> list[str]:
    """The paths under ``out`` that differ from ``files``: changed, missing, or a schema file
    no message has any more; sorted, relative to ``out``."""
    stale = [
        rel
        for rel, text in files.items()
        if not (out / rel).is_file() or (out / rel).read_text(encoding="utf-8") != text
    ]
    schemas = out / SCHEMA_DIR
    if schemas.is_dir():
        stale += [
            f"{SCHEMA_DIR}/{p.name}"
            for p in schemas.glob("*.json")
            if f"{SCHEMA_DIR}/{p.name}" not in files
        ]
    return sorted(stale)


def write_files(out: Path, files: dict[str, str]) -> list[str]:
    """Write ``files`` under ``out`` (creating it) and remove schema files no message has;
    returns the paths changed, relative to ``out``."""
    changed = stale_files(out, files)
    for rel in changed:
        path = out / rel
        if rel in files:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(files[rel], encoding="utf-8")
        else:
            path.unlink()
    return changed


def contract(
    out: Annotated[Path, typer.Option(help="Directory of the contract files.")] = Path(
        "docs/contract"
    ),
    subjects: Annotated[
        Path,
        typer.Option(
            help="subjects.md, whose message sections give the examples.",
            show_default="subjects.md of this checkout",
        ),
    ] = REPO_SUBJECTS,
    check: Annotated[
        bool, typer.Option("--check", help="Write nothing; exit 1 when a file differs.")
    ] = False,
) -> None:
    """Write the AsyncAPI 3.0 document and one JSON Schema per message, generated from the
    wire Structs (deterministic: commit them). --check exits 1 when they are out of date."""
    if not subjects.is_file():
        err.print(f"[red]{subjects} not found:[/red] pass --subjects PATH/subjects.md")
        raise typer.Exit(2)
    files = render_contract(subjects.read_text(encoding="utf-8"))
    if check:
        stale = stale_files(out, files)
        if stale:
            err.print(
                f"[red]{out} is out of date[/red] (the wire Structs or subjects.md changed): "
                f"{', '.join(stale)}. Regenerate with `{REGENERATE}` and commit the files.",
                soft_wrap=True,
            )
            raise typer.Exit(1)
        console.print(f"{out}: {len(files)} files up to date")
        return
    changed = write_files(out, files)
    console.print(f"{out}: {len(files)} files, {len(changed)} changed")
