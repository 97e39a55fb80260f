"""healthchecks.io's ping routes, at /ping/<uuid>[/start|/fail|/log|/<exit status>], each also
with a trailing slash as healthchecks accepts them."""

from django.urls import path

from runs import ping_views

urlpatterns = [
    path("<str:code>", ping_views.ping, name="ping"),
    path("<str:code>/", ping_views.ping),
    path("<str:code>/<str:action>", ping_views.ping, name="ping-signal"),
    path("<str:code>/<str:action>/", ping_views.ping),
]
