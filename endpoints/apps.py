from django.apps import AppConfig


class EndpointsConfig(AppConfig):
    name = "endpoints"
    verbose_name = "Endpoints"

    def ready(self) -> None:
        from django.core import checks

        from endpoints import channels, registry

        registry.autodiscover()
        checks.register(channels.check_global_urls)
