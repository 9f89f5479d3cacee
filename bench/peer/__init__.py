"""A minimal Django project that runs django-helpdesk for the head-to-head benchmark (issue 9)."""
