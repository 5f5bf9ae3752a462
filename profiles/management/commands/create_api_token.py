"""Create an API token for a user and print it, once: `manage.py create_api_token alice --name CI`.

Takes the role of DRF's drf_create_token, for hashed tokens: only the token goes to stdout (so
`TOKEN=$(manage.py create_api_token alice)` works) and nothing keeps it; what it is goes to stderr.
The user's other tokens are left alone (revoke them on the settings page or in the admin).
"""

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from profiles.tokens import DEFAULT_NAME, MAX_DAYS, NAME_MAX_LENGTH, token_create, token_expiry


class Command(BaseCommand):
    help = "Create an API token for a user and print it (shown only this once; only its hash is stored)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument(
            "--name", default=DEFAULT_NAME, help=f'What it is for (default "{DEFAULT_NAME}").'
        )
        parser.add_argument(
            "--expires-days",
            type=int,
            default=None,
            metavar="D",
            help=f"Expire it after D days (1 to {MAX_DAYS}); without it, it never expires.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        name, days = options["name"].strip(), options["expires_days"]
        if not name or len(name) > NAME_MAX_LENGTH:
            raise CommandError(f"--name: give 1 to {NAME_MAX_LENGTH} characters.")
        if days is not None and not 1 <= days <= MAX_DAYS:
            raise CommandError(f"--expires-days: give 1 to {MAX_DAYS}.")
        users = get_user_model()._default_manager
        try:
            user = users.get_by_natural_key(options["username"])
        except users.model.DoesNotExist:
            raise CommandError(f"No user named {options['username']!r}.") from None
        if not user.is_active:
            raise CommandError(f"{user.get_username()!r} is deactivated: their tokens would not work.")
        token, text = token_create(user=user, name=name, expires_at=token_expiry(days=days))
        expiry = f"expires {token.expires_at:%Y-%m-%d %H:%M} UTC" if token.expires_at else "never expires"
        self.stderr.write(
            f'API token "{token.name}" ({token.prefix}…) for {user.get_username()}, {expiry}. '
            "It is shown only this once: copy it now."
        )
        self.stdout.write(text)
