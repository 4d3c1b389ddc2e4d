"""Who may use the page of `sftlab ui`: anyone on this machine when it serves on loopback (the default,
127.0.0.1); beyond it (`--host 0.0.0.0`, an interface's address, a host name) only users who log in with
Gradio's basic auth, unless `--no_auth` says on purpose that anyone who can reach the machine may.

Logins come from `--auth USER:PASSWORD`, `--auth_file FILE` (one `USER:PASSWORD` a line; blank lines and
`#` comments are skipped) or, when neither is given, `$SFTLAB_UI_AUTH` (`USER:PASSWORD`): the file and the
variable keep the password out of the process list and the shell history. Passwords are never printed.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

from sftlab.errors import SftlabError

AUTH_VARIABLE = "SFTLAB_UI_AUTH"
Login = tuple[str, str]


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach `host` (127.0.0.0/8, ::1, localhost); a name that is not
    `localhost` counts as beyond loopback, whatever it resolves to today."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_login(text: str, where: str) -> Login:
    user, colon, password = text.strip().partition(":")
    if not (colon and user.strip() and password):
        raise SftlabError(f"{where}: a login is USER:PASSWORD, both non-empty")
    return user.strip(), password


def read_logins(path: str) -> list[Login]:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise SftlabError(f"ui: --auth_file {path}: {err.strerror}") from None
    logins = [
        parse_login(line, f"ui: --auth_file {path} line {n}")
        for n, line in enumerate(lines, 1)
        if line.strip() and not line.startswith("#")
    ]
    if not logins:
        raise SftlabError(f"ui: --auth_file {path} holds no login (one USER:PASSWORD a line)")
    return logins


def logins_for(host: str, auth: str | None, auth_file: str | None, no_auth: bool) -> list[Login]:
    """The logins the page asks for (none: open), or a one-line error when serving beyond loopback
    without logins and without `--no_auth`."""
    if no_auth and (auth or auth_file):
        raise SftlabError("ui: --no_auth and --auth/--auth_file contradict each other: give one of them")
    logins = [parse_login(auth, "ui: --auth")] if auth else read_logins(auth_file) if auth_file else []
    if not logins and not no_auth and os.environ.get(AUTH_VARIABLE):
        logins = [parse_login(os.environ[AUTH_VARIABLE], f"ui: ${AUTH_VARIABLE}")]
    if not logins and not no_auth and not is_loopback(host):
        raise SftlabError(
            f"ui: --host {host} serves the model beyond this machine: give a login with --auth USER:PASSWORD "
            f"(or --auth_file FILE, or ${AUTH_VARIABLE}), or --no_auth to let anyone who can reach it in"
        )
    return logins


def access_note(host: str, logins: list[Login]) -> str:
    """What the start-up line says about who may use the page."""
    if logins:
        users = ", ".join(sorted({user for user, _ in logins}))
        return f"login required (user{'s' if len(logins) > 1 else ''} {users})"
    if is_loopback(host):
        return "only this machine can reach it"
    return "WITHOUT a login (--no_auth): anyone who can reach this machine can use the model"
