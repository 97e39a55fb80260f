from django.apps import AppConfig


class EndpointsConfig(AppConfig):
    name = "endpoints"
    verbose_name = "Endpoints"

    def ready(self) -> None:
        from django.core import checks
        from django.db.models.signals import pre_delete

        from endpoints import audit, channels, registry, run_after

        registry.autodiscover()
        audit.register()
        checks.register(channels.check_global_urls)
        # Every way of deleting an endpoint (admin, API, applyjobs --prune, a queryset) sends it.
        pre_delete.connect(run_after.forget_deleted, sender="endpoints.Endpoint")
