import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from scheduler_site.settings import env


class Command(BaseCommand):
    help = "Create the first admin user if there is no user at all (used by `make run`)."

    def handle(self, *args, **options) -> None:
        User = get_user_model()
        if User.objects.exists():
            return
        username = env.str("ADMIN_USERNAME", default="admin")
        password = env.str("ADMIN_PASSWORD", default="")
        generated = not password
        if generated:
            password = secrets.token_urlsafe(12)
        User.objects.create_superuser(username=username, email="", password=password)
        self.stdout.write(self.style.SUCCESS(f"Created admin user '{username}'."))
        if generated:
            self.stdout.write(f"Its password (shown once, change it after logging in): {password}")
