from django.apps import AppConfig
from django.db.backends.signals import connection_created


class RunsConfig(AppConfig):
    name = "runs"
    verbose_name = "Runs"

    def ready(self) -> None:
        from scheduler_site.postgres import use_arrays_for_in_lists, use_c_timestamp_loader

        use_arrays_for_in_lists()
        connection_created.connect(use_c_timestamp_loader, dispatch_uid="c-timestamp-loader")
