"""Usage records, the price table and monthly budgets; the price table seeded with OpenAI's list prices.

Seed source: LiteLLM's model_prices_and_context_window.json (github.com/BerriAI/litellm, commit
00035b69f416be24e2e323c13198d9b7d2d1bdf9), read on 2026-12-01: its "openai" entries of mode "chat",
input_cost_per_token / cache_read_input_token_cost / output_cost_per_token, times a million. Standard
tier only (not batch, flex or priority), and the base rate of the models with a long-context rate
(gpt-5.4, gpt-5.5: prompts over 272k tokens cost more and are under-costed here). They apply from
2020-01-01, i.e. to every call recorded; a later price is a new row with its own date (the admin).
"""

from datetime import date
from decimal import Decimal

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

FROM = date(2020, 1, 1)
NOTE = "OpenAI list price (LiteLLM, 2026-12-01)"

# (model pattern: a regular expression matched against the whole model name, input, cached input,
# output): USD per million tokens. None: no cached rate (cached tokens priced as input).
SEED = [
    (r"gpt-3\.5-turbo(-0125)?", "0.50", None, "1.50"),
    (r"gpt-4", "30", None, "60"),
    (r"gpt-4-turbo(-2024-04-09)?", "10", None, "30"),
    (r"gpt-4\.1(-2025-04-14)?", "2.00", "0.50", "8.00"),
    (r"gpt-4\.1-mini(-2025-04-14)?", "0.40", "0.10", "1.60"),
    (r"gpt-4\.1-nano(-2025-04-14)?", "0.10", "0.025", "0.40"),
    (r"gpt-4o(-2024-08-06|-2024-11-20)?", "2.50", "1.25", "10.00"),
    (r"gpt-4o-2024-05-13", "5.00", None, "15.00"),
    (r"gpt-4o-mini(-2024-07-18)?", "0.15", "0.075", "0.60"),
    (r"gpt-5(-2025-08-07|-chat-latest)?", "1.25", "0.125", "10.00"),
    (r"gpt-5-mini(-2025-08-07)?", "0.25", "0.025", "2.00"),
    (r"gpt-5-nano(-2025-08-07)?", "0.05", "0.005", "0.40"),
    (r"gpt-5\.1(-2025-11-13|-chat-latest)?", "1.25", "0.125", "10.00"),
    (r"gpt-5\.2(-2025-12-11|-chat-latest)?", "1.75", "0.175", "14.00"),
    (r"gpt-5\.3-chat-latest", "1.75", "0.175", "14.00"),
    (r"gpt-5\.4(-2026-03-05)?", "2.50", "0.25", "15.00"),
    (r"gpt-5\.4-mini(-2026-03-17)?", "0.75", "0.075", "4.50"),
    (r"gpt-5\.4-nano(-2026-03-17)?", "0.20", "0.02", "1.25"),
    (r"gpt-5\.5(-2026-04-23)?", "5.00", "0.50", "30.00"),
    (r"o1(-2024-12-17)?", "15.00", "7.50", "60.00"),
    (r"o3(-2025-04-16)?", "2.00", "0.50", "8.00"),
    (r"o3-mini(-2025-01-31)?", "1.10", "0.55", "4.40"),
    (r"o4-mini(-2025-04-16)?", "1.10", "0.275", "4.40"),
]


def seed_prices(apps, schema_editor):
    Price = apps.get_model("usage", "Price")
    Price.objects.bulk_create(
        Price(
            model_pattern=pattern,
            input_per_million=Decimal(input_price),
            cached_input_per_million=None if cached is None else Decimal(cached),
            output_per_million=Decimal(output),
            effective_from=FROM,
            note=NOTE,
        )
        for pattern, input_price, cached, output in SEED
    )


def unseed_prices(apps, schema_editor):
    apps.get_model("usage", "Price").objects.filter(effective_from=FROM, note=NOTE).delete()


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("conversations", "0001_initial"),
        ("profiles", "0002_apitoken"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Budget",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "staff_limit",
                    models.DecimalField(
                        blank=True,
                        decimal_places=2,
                        help_text="Set by staff (USD per month).",
                        max_digits=10,
                        null=True,
                    ),
                ),
                (
                    "user_limit",
                    models.DecimalField(
                        blank=True,
                        decimal_places=2,
                        help_text="Set by the user (USD per month).",
                        max_digits=10,
                        null=True,
                    ),
                ),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "user",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="usage_budget",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "verbose_name": "monthly budget",
            },
        ),
        migrations.CreateModel(
            name="Price",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "model_pattern",
                    models.CharField(
                        help_text="A regular expression matched against the whole model name.", max_length=200
                    ),
                ),
                ("input_per_million", models.DecimalField(decimal_places=6, max_digits=12)),
                (
                    "cached_input_per_million",
                    models.DecimalField(
                        blank=True,
                        decimal_places=6,
                        help_text="Cached prompt tokens; empty: priced as input.",
                        max_digits=12,
                        null=True,
                    ),
                ),
                ("output_per_million", models.DecimalField(decimal_places=6, max_digits=12)),
                (
                    "effective_from",
                    models.DateField(help_text="Calls from this day (UTC) on use this price."),
                ),
                ("note", models.CharField(blank=True, default="", max_length=200)),
            ],
            options={
                "ordering": ["model_pattern", "-effective_from"],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("model_pattern", "effective_from"), name="usage_price_once_a_day"
                    )
                ],
            },
        ),
        migrations.CreateModel(
            name="UsageRecord",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "entry_point",
                    models.CharField(
                        choices=[
                            ("chat_api", "/api/chat/openai"),
                            ("v1", "/v1/chat/completions"),
                            ("conversation", "conversation"),
                        ],
                        max_length=16,
                    ),
                ),
                ("model", models.CharField(max_length=200)),
                ("prompt_tokens", models.PositiveIntegerField(default=0)),
                ("completion_tokens", models.PositiveIntegerField(default=0)),
                ("cached_tokens", models.PositiveIntegerField(default=0)),
                ("reasoning_tokens", models.PositiveIntegerField(default=0)),
                ("estimated", models.BooleanField(default=False)),
                ("outcome", models.CharField(max_length=16)),
                ("key_source", models.CharField(blank=True, default="", max_length=8)),
                ("started_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("time_to_first_token", models.FloatField(blank=True, null=True)),
                ("duration", models.FloatField(blank=True, null=True)),
                ("cost", models.DecimalField(blank=True, decimal_places=10, max_digits=16, null=True)),
                (
                    "api_token",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="profiles.apitoken",
                    ),
                ),
                (
                    "message",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="conversations.message",
                    ),
                ),
                (
                    "user",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="usage_records",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "ordering": ["-started_at"],
                "indexes": [
                    models.Index(fields=["user", "started_at"], name="usage_user_started"),
                    models.Index(fields=["started_at"], name="usage_started"),
                ],
            },
        ),
        migrations.RunPython(seed_prices, unseed_prices),
    ]
