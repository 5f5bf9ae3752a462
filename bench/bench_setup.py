"""Create (or reuse) benchmark users, each with a stored OpenAI key and an API token; print the tokens.

One user per concurrent stream, so the per-user stream cap (MAX_STREAMS_PER_USER) stays on, as in
production, without refusing the benchmark's streams. Run by stream_bench.py with the app's
environment (DATABASE_URL, PROFILE_ENCRYPTION_KEYS, ...) after `manage.py migrate`:
`python bench/bench_setup.py COUNT OPENAI_KEY` prints COUNT tokens, one a line.

Tokens are stored hashed, so an earlier run's token cannot be printed again: each run revokes the
user's tokens and makes a new one (one token per user, as before).
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")

import django

django.setup()

from django.contrib.auth import get_user_model
from django.db import transaction

from profiles.services import profile_for, profile_set_openai_key
from profiles.tokens import token_create, tokens_revoke_all


def main(count: int, api_key: str) -> None:
    users = get_user_model().objects
    with transaction.atomic():
        for n in range(count):
            username = f"bench-{n:04d}"
            user, _ = users.get_or_create(username=username, defaults={"email": f"{username}@bench.invalid"})
            profile_set_openai_key(profile=profile_for(user=user), api_key=api_key)
            tokens_revoke_all(user=user)
            print(token_create(user=user, name="bench")[1])


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
