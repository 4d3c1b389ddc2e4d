"""The `sftlab` entry point (filled in below)."""


def main() -> None:
    raise SystemExit("not yet")
