from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.permissions import IsAuthenticated

from webadmin.views import auth as auth_views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(permission_classes=[IsAuthenticated]), name="api-schema"),
    path("api/", include("webadmin.api_urls", namespace="api")),
    path("accounts/login/", auth_views.login_view, name="login"),
    path("accounts/login/totp/", auth_views.login_totp, name="login_totp"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("webadmin.urls")),
    path("", include("quarantine.urls")),
    path("", include("reports.urls")),
]
