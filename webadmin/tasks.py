"""Celery tasks (names are explicit: ``area.verb``)."""
