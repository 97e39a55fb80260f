"""Viewer / Operator / Editor groups (DESIGN §4)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

VIEWER = ["endpoints.view_endpoint", "runs.view_log"]
OPERATOR = VIEWER + ["endpoints.trigger_endpoint", "endpoints.toggle_endpoint", "runs.retry_log"]
EDITOR = OPERATOR + [
    "endpoints.add_endpoint",
    "endpoints.change_endpoint",
    "endpoints.delete_endpoint",
]
ROLES = {"Viewer": VIEWER, "Operator": OPERATOR, "Editor": EDITOR}


def create_roles(apps, schema_editor):
    # Permissions are normally made after all migrations (post_migrate); make them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, codes in ROLES.items():
        group, _ = Group.objects.get_or_create(name=role)
        for code in codes:
            app_label, codename = code.split(".")
            group.permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=ROLES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("runs", "0001_initial"),
        ("endpoints", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
