"""URLs of the benchmark's Django project: django-helpdesk's own (its mails link to tickets)."""

from django.urls import include, path

urlpatterns = [path("helpdesk/", include("helpdesk.urls", namespace="helpdesk"))]
