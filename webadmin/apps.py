from django.apps import AppConfig


class WebadminConfig(AppConfig):
    name = "webadmin"
    verbose_name = "Bulwark administration"
