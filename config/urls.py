from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.permissions import IsAuthenticated

from webadmin.views import auth as auth_views

# The Django admin uses the gateway's login (password, then TOTP) and the same second-factor rule.
admin.site.login = lambda request, extra_context=None: auth_views.login_view(request)  # type: ignore[method-assign]
_admin_has_permission = admin.site.has_permission
admin.site.has_permission = lambda request: (  # type: ignore[method-assign]
    _admin_has_permission(request) and auth_views.totp_satisfied(request))

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
