"""Dashboard, the landing pages of the six menus, and the users' "My Account"."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from reports.charts import charts_for
from webadmin import access
from webadmin.guards import ADMINS, ANYONE, SETTINGS_ADMINS, roles
from webadmin.models import Role
from webadmin.status import server_status


def _task(url_name: str, label: str, help_text: str, query: str = "") -> dict[str, str]:
    return {"url": reverse(url_name) + query, "label": label, "help": help_text}


@roles(*ANYONE)
def home(request: HttpRequest) -> HttpResponse:
    if access.principal(request.user).role == Role.USER:
        return redirect("webadmin:my_account")
    return redirect("webadmin:dashboard")


@roles(*ADMINS)
def dashboard(request: HttpRequest) -> HttpResponse:
    p = access.principal(request.user)
    ctx = {
        "menu": "dashboard", "title": "Dashboard",
        "status": server_status() if p.is_global else [],
        "domains": access.domains_visible_to(request.user).count(),
        "users": access.accounts_visible_to(request.user).count() if p.manages_settings else None,
        "held": access.quarantine_recipients_visible_to(request.user).filter(status="held").count(),
        "charts": charts_for(request.user),
    }
    return render(request, "webadmin/dashboard.html", ctx)


@roles(*SETTINGS_ADMINS)
def setup_landing(request: HttpRequest) -> HttpResponse:
    p = access.principal(request.user)
    tasks = [
        _task("webadmin:domains", "Domains", "Mail servers, alias domains and per-domain options."),
        _task("webadmin:users", "Users", "Create, edit, import and export users and administrators."),
        _task("webadmin:user_import", "Import users (CSV)", "Create many users at once."),
        _task("webadmin:user_export", "Export users (CSV)", "Download the user list."),
        _task("webadmin:user_options", "Default user options", "What users may see and change."),
    ]
    if p.is_global:
        tasks += [_task("webadmin:admin_settings", "Gateway settings", "Retention, digest links, two-factor login."),
                  _task("webadmin:totp_setup", "Two-factor login", "Your own TOTP authenticator.")]
    tasks.append(_task("webadmin:my_token", "API token", "Your personal REST API token."))
    return render(request, "landing.html", {"menu": "setup", "title": "Setup / Users", "tasks": tasks,
                                            "intro": "Domains, users, delegation and verification of recipients."})


@roles(*SETTINGS_ADMINS)
def security_landing(request: HttpRequest) -> HttpResponse:
    tasks = [
        _task("webadmin:lists", "Allow and block lists", "Senders, recipients, hosts and networks."),
        _task("webadmin:scripts", "Sieve scripts", "Your own policy scripts, validated as you type."),
        _task("webadmin:policy_order", "Policy order", "Every script the gateway runs, system scripts included."),
        _task("webadmin:layers", "Layer settings", "Every defence layer: on, score-only or off, and its options."),
        _task("webadmin:antispam", "Anti-spam state", "What Bayes learned per scope; greylisting state."),
        _task("webadmin:antispam_scan", "Scan a message", "What the gateway would do with a message now: "
              "verdict, score and every symbol."),
        _task("webadmin:antispam_rules", "Heuristic rules", "Every rule that runs: its points, what it means, and "
              "how often it hit junk and good mail."),
        _task("webadmin:antispam_train", "Train Bayes", "Learn a mailbox of spam or good mail (mbox, .eml or a zip "
              "of them), with its progress."),
    ]
    from gateway_milter import layers

    for lid in ("scoring", "greylist", "bayes", "rules", "dnsbl", "uribl", "antivirus", "attachments", "spf", "dkim",
                "dmarc"):
        if lid in layers.available():
            tasks.append({"url": reverse("webadmin:layer", args=[lid]), "label": f"{layers.get(lid).name} settings",
                          "help": (layers.get(lid).description or f"Settings of the {lid} layer.")[:140]})
    try:
        import gateway_milter.auth.keystore  # noqa: F401

        tasks.append(_task("webadmin:dkim_keys", "DKIM keys", "Signing keys and the DNS TXT records to publish."))
    except ImportError:
        pass
    return render(request, "landing.html", {"menu": "security", "title": "Security", "tasks": tasks,
                                            "intro": "What the gateway checks and what it does about it."})
