from django.apps import AppConfig


class ExamplesConfig(AppConfig):
    """The handlers the README and the API contracts name in their examples (examples/handlers.py),
    registered when CRONPLANE_EXAMPLES is on (the default) so that a copied example runs."""

    name = "examples"
    verbose_name = "Example handlers"
