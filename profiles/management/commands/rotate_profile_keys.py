"""Re-encrypt every stored OpenAI key (every profile's, then the team key) with the newest key of
PROFILE_ENCRYPTION_KEYS.

Rotation procedure (README, "Key rotation"): put a new key first in the ring, restart, run this,
and only once it reports no unreadable keys, drop the old key from the ring.

Rows are read and written as stored (the ciphertext column, never through the field, which would
decrypt on read and encrypt on write), in primary-key order and in batches, each batch in its own
transaction. An interrupted run resumes with --after-id <the last id it reported>. A key that no
ring key opens is counted, listed and left exactly as it is. A row whose key changed while we
worked (its owner saved a new one) is not overwritten.
"""

from dataclasses import dataclass, field
from typing import Any

from cryptography.fernet import Fernet
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import models, transaction
from django.db.models import TextField, Value
from django.db.models.functions import Cast

from profiles import crypto
from profiles.models import Profile, TeamKey

# The column as stored: reading the field itself would decrypt it.
STORED = Cast("openai_api_key", output_field=TextField())


@dataclass
class Tally:
    rotated: int = 0
    current: int = 0
    empty: int = 0
    changed: int = 0
    unreadable: list[str] = field(default_factory=list)  # which row: "profile id 3 (user bob)"

    def line(self) -> str:
        return (
            f"rotated {self.rotated}, already current {self.current}, empty {self.empty}, "
            f"unreadable {len(self.unreadable)}, changed meanwhile {self.changed}"
        )


class Command(BaseCommand):
    help = "Re-encrypt every stored OpenAI key with the newest PROFILE_ENCRYPTION_KEYS key (resumable)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--batch-size", type=int, default=500, help="profiles per transaction (default 500)"
        )
        parser.add_argument(
            "--after-id",
            type=int,
            default=0,
            help="resume: start after this profile id (the last one a previous run reported)",
        )
        parser.add_argument("--dry-run", action="store_true", help="count what would change, write nothing")

    def handle(self, *args: Any, batch_size: int, after_id: int, dry_run: bool, **options: Any) -> None:
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        try:
            crypto.key_ring()
        except crypto.KeyRingError as exc:
            raise CommandError(str(exc)) from None
        keys = settings.PROFILE_ENCRYPTION_KEYS
        # The ring's first key encrypts; with a single key there is nothing older to move away from.
        newest = Fernet(keys[0].strip()) if len(keys) > 1 else None
        if newest is None:
            self.stdout.write("The key ring has one key: every readable key is already current.")

        tally = Tally()
        last_id = after_id
        while True:
            batch = list(
                Profile.objects.filter(pk__gt=last_id)
                .order_by("pk")
                .annotate(stored=STORED)
                .values_list("pk", "user__username", "stored")[:batch_size]
            )
            if not batch:
                break
            with transaction.atomic():
                for pk, username, stored in batch:
                    self._rotate_one(
                        Profile, pk, f"profile id {pk} (user {username})", stored, newest, tally, dry_run
                    )
            last_id = batch[-1][0]
            self.stdout.write(f"up to profile id {last_id}: {tally.line()}")

        # The team key: one row at most, rotated on every run (a resumed one included).
        for pk, stored in TeamKey.objects.annotate(stored=STORED).values_list("pk", "stored"):
            with transaction.atomic():
                self._rotate_one(TeamKey, pk, "the team key", stored, newest, tally, dry_run)
            self.stdout.write(f"team key: {tally.line()}")

        verb = "would be" if dry_run else "were"
        self.stdout.write(f"Done{' (dry run: nothing written)' if dry_run else ''}: {tally.line()}.")
        if tally.unreadable:
            self.stderr.write(
                f"{len(tally.unreadable)} stored keys no ring key can decrypt {verb} left as they are "
                "(their owners are asked to re-enter them; keep the old ring key if you still have it):"
            )
            for which in tally.unreadable:
                self.stderr.write(f"  {which}")

    @staticmethod
    def _rotate_one(
        model: type[models.Model],
        pk: int,
        which: str,
        stored: str | None,
        newest: Fernet | None,
        tally: Tally,
        dry_run: bool,
    ) -> None:
        if not stored:
            tally.empty += 1
            return
        try:
            if newest is None:
                crypto.decrypt(stored)
            else:
                newest.decrypt(stored.encode("ascii"))
            tally.current += 1
            return
        except (crypto.InvalidToken, ValueError):  # ValueError: not even ASCII, so not a token
            pass
        try:
            rotated = crypto.reencrypt(stored)
        except (crypto.InvalidToken, ValueError):
            tally.unreadable.append(which)
            return
        if dry_run:
            tally.rotated += 1
            return
        # Only if the row still holds what we read: a key saved meanwhile is newer than ours.
        written = (
            model._default_manager.annotate(stored=STORED)
            .filter(pk=pk, stored=stored)
            .update(openai_api_key=Value(rotated, output_field=TextField()))
        )
        if written:
            tally.rotated += 1
        else:
            tally.changed += 1
