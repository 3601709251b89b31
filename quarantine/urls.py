from django.urls import path

from quarantine import views

app_name = "quarantine"
urlpatterns = [
    path("messages/", views.landing, name="landing"),
    path("messages/queue/", views.mta_queue, name="mta_queue"),
    path("messages/quarantine/", views.quarantine_list, name="list"),
    path("messages/quarantine/bulk/", views.quarantine_bulk, name="bulk"),
    path("messages/quarantine/<int:pk>/", views.quarantine_detail, name="detail"),
    path("messages/quarantine/<int:pk>/preview/", views.quarantine_preview, name="preview"),
    path("messages/quarantine/<int:pk>/source/", views.quarantine_source, name="source"),
    path("messages/quarantine/<int:pk>/action/", views.quarantine_action, name="action"),
    path("digest/<str:token>/", views.digest_link, name="digest"),
]
