from django.urls import path

from reports import views

app_name = "reports"
urlpatterns = [
    path("logging/", views.logging_landing, name="logging"),
    path("logging/log/", views.log_search, name="log"),
    path("logging/log/export.csv", views.log_export, name="log_export"),
    path("logging/log/<int:pk>/", views.log_detail, name="detail"),
    path("logging/log/<int:pk>/action/", views.log_action, name="action"),
    path("reports/", views.reports_landing, name="landing"),
]
