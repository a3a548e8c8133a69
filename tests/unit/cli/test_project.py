"""What every command shares: the interruption message says what really happened."""

from __future__ import annotations

from envkit.cli.project import interrupted


def test_an_interruption_says_whether_the_stack_was_removed_or_kept() -> None:
    assert interrupted().code == 130
    assert str(interrupted().message) == (
        "envkit: interrupted; the stack's containers and network were removed."
    )
    kept = interrupted(kept=True)
    assert kept.code == 130
    assert "the stack was left up (--keep)" in str(kept.message)
    assert "were removed" not in str(kept.message)
