from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "api"
    verbose_name = "API"

    def ready(self) -> None:
        from django.conf import settings
        from django.db.models.signals import post_save

        from api.models import revoke_tokens_of_inactive_user

        post_save.connect(
            revoke_tokens_of_inactive_user,
            sender=settings.AUTH_USER_MODEL,
            dispatch_uid="api.revoke_tokens_of_inactive_user",
        )
