from django.apps import AppConfig


class UsageConfig(AppConfig):
    name = "usage"
    verbose_name = "Usage and cost"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The signal receivers that drop cached prices and budget figures when either is saved.
        from . import budgets, prices  # noqa: F401
