"""Who may use the page of `sftlab ui`: beyond loopback only with a login or an explicit `--no_auth`;
logins from --auth, --auth_file or $SFTLAB_UI_AUTH; every refusal one line, before any model loads."""

from __future__ import annotations

import pytest

from sftlab.cli import main
from sftlab.errors import SftlabError
from sftlab.ui.access import access_note, is_loopback, logins_for


@pytest.fixture(autouse=True)
def no_login_in_the_environment(monkeypatch):
    monkeypatch.delenv("SFTLAB_UI_AUTH", raising=False)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_needs_no_login(host):
    assert is_loopback(host) and logins_for(host, None, None, no_auth=False) == []
    assert access_note(host, []) == "only this machine can reach it"


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.7", "myhost.example.org"])
def test_beyond_loopback_without_a_login_is_refused_with_one_line(host, tmp_path, capsys):
    assert not is_loopback(host)
    with pytest.raises(SystemExit) as stop:
        main(["ui", "--model", str(tmp_path / "no_model"), "--host", host])  # refused before the model is looked for
    assert stop.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        f"sftlab: error: ui: --host {host} serves the model beyond this machine: give a login with --auth USER:PASSWORD "
        "(or --auth_file FILE, or $SFTLAB_UI_AUTH), or --no_auth to let anyone who can reach it in"
    ]


def test_logins_come_from_the_flag_the_file_or_the_environment(tmp_path, monkeypatch):
    assert logins_for("0.0.0.0", "alice:pa:ss", None, no_auth=False) == [("alice", "pa:ss")]
    logins = tmp_path / "logins"
    logins.write_text("# who may chat\nalice:one\n\nbob:two\n")
    assert logins_for("0.0.0.0", None, str(logins), no_auth=False) == [("alice", "one"), ("bob", "two")]
    assert access_note("0.0.0.0", [("alice", "one"), ("bob", "two")]) == "login required (users alice, bob)"
    monkeypatch.setenv("SFTLAB_UI_AUTH", "carol:three")
    assert logins_for("0.0.0.0", None, None, no_auth=False) == [("carol", "three")]
    assert logins_for("0.0.0.0", "alice:one", None, no_auth=False) == [("alice", "one")]  # the flag first


def test_no_auth_opens_the_page_on_purpose_and_says_so():
    assert logins_for("0.0.0.0", None, None, no_auth=True) == []
    assert "WITHOUT a login (--no_auth)" in access_note("0.0.0.0", [])


@pytest.mark.parametrize(
    ("auth", "auth_file", "no_auth", "error"),
    [
        ("alice", None, False, r"ui: --auth: a login is USER:PASSWORD, both non-empty"),
        (":secret", None, False, r"ui: --auth: a login is USER:PASSWORD"),
        ("alice:", None, False, r"ui: --auth: a login is USER:PASSWORD"),
        ("alice:one", None, True, r"--no_auth and --auth/--auth_file contradict each other"),
        (None, "{tmp}/none", False, r"--auth_file .*/none: No such file or directory"),
        (None, "{tmp}/comments", False, r"--auth_file .*/comments holds no login"),
        (None, "{tmp}/bad", False, r"--auth_file .*/bad line 2: a login is USER:PASSWORD"),
    ],
)
def test_bad_logins_are_one_line_errors(auth, auth_file, no_auth, error, tmp_path):
    (tmp_path / "comments").write_text("# nobody yet\n")
    (tmp_path / "bad").write_text("alice:one\nbob\n")
    auth_file = auth_file.format(tmp=tmp_path) if auth_file else None
    with pytest.raises(SftlabError, match=error):
        logins_for("0.0.0.0", auth, auth_file, no_auth)
