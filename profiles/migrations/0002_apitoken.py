"""Hashed API tokens (profiles.ApiToken), replacing DRF's authtoken tokens, which were stored in clear.

Each existing DRF token is carried over as its digest, so it keeps working, and the clear-text table
is dropped: after this migration no usable token is left in the database. There is no way back:
unapplying this migration deletes the hashed tokens, and no token's text can be recovered from them.
"""

import hashlib
from datetime import UTC, datetime

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models
from django.db.migrations.recorder import MigrationRecorder
from django.utils.dateparse import parse_datetime

DRF_TABLE = "authtoken_token"
CARRIED_OVER_NAME = "API token (from before hashing)"
CARRIED_OVER_PREFIX = 8  # of DRF's 40 hex characters


def _aware(value: datetime | str) -> datetime:
    # A raw cursor gives what the backend stores: SQLite and MySQL a naive UTC time (SQLite even text
    # without its declared-type converters), PostgreSQL an aware one.
    created = parse_datetime(value) if isinstance(value, str) else value
    return created.replace(tzinfo=UTC) if created.tzinfo is None else created


def hash_drf_tokens(apps, schema_editor) -> None:
    connection = schema_editor.connection
    if DRF_TABLE not in connection.introspection.table_names():
        return  # a database that never had DRF's tokens
    ApiToken = apps.get_model("profiles", "ApiToken")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {connection.ops.quote_name('key')}, user_id, created FROM {DRF_TABLE}")
        rows = cursor.fetchall()
    ApiToken.objects.using(connection.alias).bulk_create(
        ApiToken(
            user_id=user_id,
            name=CARRIED_OVER_NAME,
            prefix=key[:CARRIED_OVER_PREFIX],
            digest=hashlib.sha256(key.encode()).hexdigest(),  # as profiles.tokens.token_digest
            created_at=_aware(created),
        )
        for key, user_id, created in rows
    )
    schema_editor.execute(f"DROP TABLE {connection.ops.quote_name(DRF_TABLE)}")
    # rest_framework.authtoken is no longer installed: forget its migrations too, so that installing
    # it again would create its table again rather than assume the dropped one.
    MigrationRecorder(connection).migration_qs.filter(app="authtoken").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("profiles", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="ApiToken",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=100)),
                ("prefix", models.CharField(max_length=16)),
                ("digest", models.CharField(max_length=64, unique=True)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("last_used_at", models.DateTimeField(blank=True, null=True)),
                ("expires_at", models.DateTimeField(blank=True, null=True)),
                (
                    "user",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="api_tokens",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={"ordering": ["-created_at"], "verbose_name": "API token"},
        ),
        migrations.RunPython(hash_drf_tokens, migrations.RunPython.noop),
    ]
