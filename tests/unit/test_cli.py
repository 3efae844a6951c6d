"""The command line as a user reads it: every command listed once, each with its own
help, flags as expected; and the table format cannot drive the terminal."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from replay_ingest import cli
from replay_ingest.query import print_table


def help_of(*argv: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_:
        cli.build_parser().parse_args([*argv, "--help"])
    assert exit_.value.code == 0
    return out.getvalue()


def test_the_docstring_lists_every_command_and_only_those() -> None:
    listed = [line.split()[0] for line in (cli.__doc__ or "").splitlines() if line[:2] == "  "]
    assert listed == list(cli.COMMANDS)
    top = help_of()
    assert all(f"  {name}  " in top for name in cli.COMMANDS)


@pytest.mark.parametrize("command", list(cli.COMMANDS))
def test_every_command_describes_itself(command: str) -> None:
    first = (cli.COMMANDS[command].__doc__ or "").splitlines()[0]
    assert first and first in help_of(command)


def test_spill_is_one_pass_without_flags_and_still_takes_the_old_once() -> None:
    parser = cli.build_parser()
    assert parser.parse_args(["spill"]).command == "spill"
    assert parser.parse_args(["spill", "--once"]).command == "spill"
    assert "--once" not in help_of("spill")


def test_team_reads_the_same_in_generate_and_sessions() -> None:
    parser = cli.build_parser()
    generate = parser.parse_args(["generate", "--sessions", "1", "--team", "7"])
    old_spelling = parser.parse_args(["generate", "--sessions", "1", "--team-id", "7"])
    listing = parser.parse_args(["sessions", "list", "--team", "7"])
    assert generate.team_id == old_spelling.team_id == listing.team == 7


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["--team", "1", "--session", "bad..id"], "session_id is not a valid id"),
        (["--team", "0", "--session", "s1"], "team_id must be a positive integer"),
        (["--team", "1", "--session", "s1", "--expires", "1y"], "like 90s, 15m, 12h, 7d, 2w"),
        (["--team", "1", "--session", "s1", "--expires", "366d"], "at most 365 days"),
    ],
)
def test_share_refuses_bad_arguments_before_reading_anything(
    argv: list[str], error: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REPLAY_DATA_DIR", str(tmp_path))
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert cli.main(["sessions", "share", *argv]) == 2
    assert error in err.getvalue()
    assert list(tmp_path.iterdir()) == []  # no key generated, no database opened


def test_every_option_has_help() -> None:
    for argv in (
        ["run"],
        ["generate"],
        ["produce"],
        ["sql"],
        ["sessions", "list"],
        ["sessions", "get"],
        ["sessions", "share"],
        ["dlq", "list"],
        ["dlq", "replay"],
    ):
        text = help_of(*argv)
        options = text.split("options:", 1)[1]
        lines = [line for line in options.splitlines() if line.strip()]
        # an option line with no help text is followed directly by the next option
        for line, after in zip(lines, [*lines[1:], "  -"], strict=True):
            if line.startswith("  -") and "  " not in line.strip():
                assert not after.startswith("  -"), (argv, line)


def table(columns: list[str], rows: list[list[object]]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        print_table(columns, rows)
    return out.getvalue()


def test_table_format_escapes_what_would_drive_the_terminal() -> None:
    out = table(
        ["distinct_id", "url"],
        [["\x1b]0;pwned\x07user\x1b[2J", "https://x.test/\u202egnp.exe\r\n\x9b31m"], [1, None]],
    )
    for control in ("\x1b", "\x07", "\u202e", "\r", "\x9b"):
        assert control not in out
    assert "\\x1b]0;pwned\\x07user\\x1b[2J" in out and "\\u202egnp.exe\\r\\n" in out
    assert out.splitlines()[3].split() == ["1", "None"]


@given(st.lists(st.lists(st.text(), min_size=2, max_size=2), max_size=4), st.text())
def test_table_lines_are_printable_whatever_the_values(rows: list[list[str]], name: str) -> None:
    lines = table([name, "b"], list(rows)).split("\n")
    assert lines[-1] == "" and len(lines) == len(rows) + 3
    assert all(line.isprintable() for line in lines)
