"""The revisions read from the migration scripts' source agree with Alembic's own reading."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from app.migrate import MIGRATIONS, Revisions, read_revisions, shipped_revisions


def alembics_revisions(script_location: Path) -> Revisions:
    script = ScriptDirectory(str(script_location))
    known = frozenset(rev.revision for rev in script.walk_revisions())
    return Revisions(heads=frozenset(script.get_heads()), known=known)


def write_scripts(tmp_path: Path, scripts: dict[str, str]) -> Path:
    versions = tmp_path / "versions"
    versions.mkdir()
    for name, source in scripts.items():
        (versions / name).write_text(source)
    return versions


def test_shipped_revisions_are_the_ones_alembic_reads() -> None:
    assert shipped_revisions() == alembics_revisions(MIGRATIONS)


def test_branches_merges_and_plain_assignments_read_as_alembic_reads_them(
    tmp_path: Path,
) -> None:
    versions = write_scripts(
        tmp_path,
        {
            "__init__.py": "",
            "a.py": 'revision: str = "a"\ndown_revision: str | None = None\n',
            "b.py": 'revision = "b"\ndown_revision = "a"\n',
            "c.py": 'revision = "c"\ndown_revision = "a"\n',
            "d.py": 'revision = "d"\ndown_revision = ("b", "c")\n',
            "e.py": 'revision = "e"\ndown_revision = ["d"]\ndepends_on = None\n',
            "f.py": 'import sqlalchemy\nrevision = "f"\ndown_revision = "a"\n',
        },
    )

    revisions = read_revisions(versions)

    assert revisions == alembics_revisions(tmp_path)
    assert revisions.heads == {"e", "f"}


@pytest.mark.parametrize(
    "source",
    [
        'revision = "a" + "b"\ndown_revision = None\n',
        'revision = "a"\ndown_revision = PARENT\n',
        'revision = "a"\n',
        "down_revision = None\n",
        'revision = "a"\ndown_revision = 7\n',
    ],
)
def test_a_script_without_literal_revisions_is_refused(tmp_path: Path, source: str) -> None:
    versions = write_scripts(tmp_path, {"a.py": source})

    with pytest.raises(ValueError, match=r"^a\.py: "):
        read_revisions(versions)
