"""healthchecks.io's ping routes, at /ping/<uuid>[/start|/fail|/log|/<exit status>]."""

from django.urls import path

from runs import ping_views

urlpatterns = [
    path("<str:code>", ping_views.ping, name="ping"),
    path("<str:code>/<str:action>", ping_views.ping, name="ping-signal"),
]
