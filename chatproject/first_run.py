"""The first `make run` writes a .env with this machine's own secrets, unless a .env exists.

Without it a development server runs on the SECRET_KEY written in the public settings.py, and the key
ring that encrypts users' OpenAI keys is derived from that: anyone holding a developer's db.sqlite3
could decrypt it. The .env gets a fresh random SECRET_KEY and one Fernet key for
PROFILE_ENCRYPTION_KEYS, and is readable by its owner only (0600; .gitignore keeps it out of git).

Standalone on purpose (no Django, no settings): it runs before anything reads the settings.

    python -m chatproject.first_run [--env-file PATH]
"""

import argparse
import base64
import os
import secrets
import sys
from pathlib import Path

ENV_FILE = Path(__file__).resolve().parent.parent / ".env"  # beside manage.py, where settings.py reads it

TEMPLATE = """\
# Written by the first `make run` (chatproject/first_run.py): this machine's own development secrets.
# Keep it private (mode 0600, git-ignored). Every other setting: .env.example.
# Losing PROFILE_ENCRYPTION_KEYS makes the OpenAI keys stored in this database unreadable.
SECRET_KEY={secret_key}
PROFILE_ENCRYPTION_KEYS={encryption_key}
"""


def fernet_key() -> str:
    # What cryptography's Fernet.generate_key() returns: 32 random bytes, url-safe base64.
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii")


def env_file_write(*, path: Path) -> bool:
    """Write a .env with fresh secrets at `path`; False (and nothing written) if it exists."""
    text = TEMPLATE.format(secret_key=secrets.token_urlsafe(50), encryption_key=fernet_key())
    try:
        # O_EXCL: never overwrite, even if another process creates the file meanwhile. The mode is
        # given at creation, so the secrets are never readable by others, not even for a moment.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as env_file:
        os.fchmod(env_file.fileno(), 0o600)  # in case the umask took bits we meant to keep
        env_file.write(text)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write a .env with fresh secrets unless one exists.")
    parser.add_argument("--env-file", type=Path, default=ENV_FILE, help=f"default: {ENV_FILE}")
    path = parser.parse_args(argv).env_file
    if env_file_write(path=path):
        print(
            f"Wrote {path} with a new random SECRET_KEY and PROFILE_ENCRYPTION_KEYS "
            "(mode 0600, git-ignored): keep it, and never commit it."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
