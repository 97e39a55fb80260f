from django.apps import AppConfig


class EndpointsConfig(AppConfig):
    name = "endpoints"
    verbose_name = "Endpoints"

    def ready(self) -> None:
        from django.core import checks

        from endpoints import audit, channels, registry

        registry.autodiscover()
        audit.register()
        checks.register(channels.check_global_urls)
