"""The schema check reads the migration graph without Alembic: it must be Alembic's graph.

Opening a workspace compares the catalog's ``alembic_version`` with the heads this code
ships (catalog/migrate.py ``_graph``), read from the migration files' text so that a
normal open never imports Alembic. A wrong graph would upgrade, or refuse, the wrong way.
"""

from __future__ import annotations

import ast

from alembic.script import ScriptDirectory

from airlock.catalog import migrate


def _alembic() -> ScriptDirectory:
    return ScriptDirectory.from_config(migrate._config())


def test_every_revision_has_alembics_parents() -> None:
    """The graph the heads and the pending list come from (tests/catalog/test_schema_checks.py
    checks the heads against what ``alembic upgrade heads`` writes)."""
    script = _alembic()
    ours = dict(migrate._graph())
    theirs: dict[str, set[str]] = {}
    for rev in script.walk_revisions():
        parents = set()
        for value in (rev.down_revision, rev.dependencies):
            parents |= {value} if isinstance(value, str) else set(value or ())
        theirs[rev.revision] = parents
    assert {rev: set(parents) for rev, parents in ours.items()} == theirs


def test_the_quick_reading_is_the_full_parse_of_each_file() -> None:
    for path in sorted((migrate.MIGRATIONS / "versions").glob("*.py")):
        text = path.read_text("utf-8")
        quick = [(m[1], m[2]) for m in migrate._ASSIGNMENT.finditer(text)]
        assert [(n, repr(v)) for n, v in migrate._assignments(text)] == [
            (n, repr(ast.literal_eval(v))) for n, v in quick
        ], path.name


def test_a_value_over_several_lines_is_read_in_full() -> None:
    text = (
        '"""A migration."""\n'
        'revision = "0099_x"\n'
        'down_revision = (\n    "0004_rollouts",\n    "0005_integrity",\n)\n'
        "depends_on = None\n"
    )
    assert migrate._assignments(text) == [
        ("revision", "0099_x"),
        ("down_revision", ("0004_rollouts", "0005_integrity")),
        ("depends_on", None),
    ]
