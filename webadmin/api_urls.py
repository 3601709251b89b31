"""/api/: one router for every app's endpoints (schema at /api/schema/)."""

from django.urls import path
from rest_framework.routers import DefaultRouter

from quarantine.api import QuarantineViewSet
from reports.api import MessageActionView, MessageDetailView, MessageListView
from webadmin.api import (
    AccountViewSet,
    AdminSettingsView,
    DashboardView,
    DkimKeysView,
    DomainViewSet,
    LayerListView,
    LayerSettingsView,
    ListEntryViewSet,
    MeView,
    MtaQueueView,
    PolicyOrderView,
    ScriptViewSet,
    SieveValidateView,
    TokenView,
    UserListEntryViewSet,
    UserOptionsView,
    UsersCsvView,
    VerificationSourceViewSet,
)
from webadmin.api_antispam import (
    BayesScopesView,
    BayesWipeView,
    GreylistClearView,
    GreylistStateView,
    RulesCatalogueView,
    RulesValidateView,
    ScanAgainView,
    ScanLearnView,
    ScanResultView,
    ScanStartView,
    TrainJobView,
    TrainStartView,
)

app_name = "api"
router = DefaultRouter()
router.register("domains", DomainViewSet, basename="domain")
router.register("users", AccountViewSet, basename="account")
router.register("lists", ListEntryViewSet, basename="listentry")
router.register("user-lists", UserListEntryViewSet, basename="userlistentry")
router.register("verification-sources", VerificationSourceViewSet, basename="verificationsource")
router.register("scripts", ScriptViewSet, basename="script")
router.register("quarantine", QuarantineViewSet, basename="quarantine")

urlpatterns = [
    path("sieve/validate/", SieveValidateView.as_view(), name="sieve-validate"),
    path("layers/", LayerListView.as_view(), name="layers"),
    path("layers/<slug:layer_id>/", LayerSettingsView.as_view(), name="layer"),
    path("messages/", MessageListView.as_view(), name="messages"),
    path("messages/<int:pk>/", MessageDetailView.as_view(), name="message"),
    path("messages/<int:pk>/action/", MessageActionView.as_view(), name="message-action"),
    path("dashboard/", DashboardView.as_view(), name="dashboard"),
    path("user-options/", UserOptionsView.as_view(), name="user-options"),
    path("settings/", AdminSettingsView.as_view(), name="settings"),
    path("users/csv/", UsersCsvView.as_view(), name="users-csv"),
    path("dkim/", DkimKeysView.as_view(), name="dkim"),
    path("queue/", MtaQueueView.as_view(), name="queue"),
    path("policy-order/", PolicyOrderView.as_view(), name="policy-order"),
    path("antispam/bayes/", BayesScopesView.as_view(), name="antispam-bayes"),
    path("antispam/bayes/wipe/", BayesWipeView.as_view(), name="antispam-bayes-wipe"),
    path("antispam/greylist/", GreylistStateView.as_view(), name="antispam-greylist"),
    path("antispam/greylist/clear/", GreylistClearView.as_view(), name="antispam-greylist-clear"),
    path("rules/validate/", RulesValidateView.as_view(), name="rules-validate"),
    path("antispam/rules/", RulesCatalogueView.as_view(), name="antispam-rules"),
    path("antispam/train/", TrainStartView.as_view(), name="antispam-train"),
    path("antispam/train/<str:token>/", TrainJobView.as_view(), name="antispam-train-job"),
    path("antispam/scan/", ScanStartView.as_view(), name="antispam-scan"),
    path("antispam/scan/<str:token>/", ScanResultView.as_view(), name="antispam-scan-result"),
    path("antispam/scan/<str:token>/learn/", ScanLearnView.as_view(), name="antispam-scan-learn"),
    path("antispam/scan/<str:token>/again/", ScanAgainView.as_view(), name="antispam-scan-again"),
    path("me/", MeView.as_view(), name="me"),
    path("me/token/", TokenView.as_view(), name="token"),
    *router.urls,
]
