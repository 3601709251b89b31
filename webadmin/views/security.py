"""Security: allow/block lists, Sieve scripts (editor validating as you type) and the
settings of every layer, global or per domain, from the layer's own Settings dataclass."""

from __future__ import annotations

from django.contrib import messages
from django.db import IntegrityError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from gateway_milter.layers.base import SettingsError, settings_from_dict, settings_to_dict
from webadmin import access, layerdocs, services
from webadmin.forms import (ListEntryForm, ScriptForm, add_settings_error, layer_settings_form,
                            layer_values_from_form)
from webadmin.guards import SETTINGS_ADMINS, roles
from webadmin.models import LayerSetting


def _actor(request: HttpRequest) -> str:
    return request.user.get_username()


@roles(*SETTINGS_ADMINS)
def lists(request: HttpRequest) -> HttpResponse:
    p = access.principal(request.user)
    form = ListEntryForm(request.POST or None, domains=access.domains_managed_by(request.user),
                         allow_global=p.is_global)
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            services.do_add_list_entry(d["list"], d["kind"], d["value"], d["domain"], d["comment"], actor=_actor(request))
        except SettingsError as e:
            form.add_error("value", e.message)
        else:
            messages.success(request, "Entry added.")
            return redirect("webadmin:lists")
    rows = access.list_entries_visible_to(request.user)
    kind = request.GET.get("list")
    if kind in ("allow", "block"):
        rows = rows.filter(list=kind)
    q = (request.GET.get("q") or "").strip()
    if q:
        rows = rows.filter(value__icontains=q)
    return render(request, "webadmin/lists.html", {"menu": "security", "title": "Allow and block lists",
                                                   "form": form, "entries": rows[:1000], "q": q})


@require_POST
@roles(*SETTINGS_ADMINS)
def list_delete(request: HttpRequest, pk: int) -> HttpResponse:
    services.do_delete_list_entry(access.access_list_entry(request.user, pk), actor=_actor(request))
    messages.success(request, "Entry removed.")
    return redirect("webadmin:lists")


@roles(*SETTINGS_ADMINS)
def scripts(request: HttpRequest) -> HttpResponse:
    rows = access.scripts_visible_to(request.user).select_related("domain")
    return render(request, "webadmin/scripts.html", {"menu": "security", "title": "Sieve scripts", "scripts": rows})


@roles(*SETTINGS_ADMINS)
def script_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    p = access.principal(request.user)
    script = access.access_script(request.user, pk) if pk is not None else None
    initial = ({"name": script.name, "domain": script.domain, "position": script.position, "order": script.order,
                "enabled": script.enabled, "source": script.source} if script else
               {"source": 'require ["fileinto"];\n\nif header :contains "subject" "[SPAM]" {\n  discard;\n}\n'})
    form = ScriptForm(request.POST or None, initial=initial, domains=access.domains_managed_by(request.user),
                      allow_global=p.is_global)
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            s = services.do_save_script(script, name=d["name"], source=d["source"], domain=d["domain"],
                                        position=d["position"], enabled=d["enabled"], order=d["order"],
                                        actor=_actor(request))
        except SettingsError as e:
            form.add_error(None, str(e))
        except IntegrityError:  # a duplicate name is a form error, not a 500
            form.add_error("name", "A script with this name exists.")
        else:
            messages.success(request, f"Script {s.name} saved and published.")
            return redirect("webadmin:scripts")
    return render(request, "webadmin/script.html", {"menu": "security", "title": script.name if script else
                                                    "New script", "form": form, "script": script})


@require_POST
@roles(*SETTINGS_ADMINS)
def script_delete(request: HttpRequest, pk: int) -> HttpResponse:
    services.do_delete_script(access.access_script(request.user, pk), actor=_actor(request))
    messages.success(request, "Script deleted.")
    return redirect("webadmin:scripts")


@roles(*SETTINGS_ADMINS)
def layers_index(request: HttpRequest) -> HttpResponse:
    from gateway_milter import layers

    rows = []
    configured = set(LayerSetting.objects.filter(domain__isnull=True).values_list("layer", flat=True))
    for lid in layers.available():
        layer = layers.get(lid)
        mode = "on"
        ls = LayerSetting.objects.filter(layer=lid, domain__isnull=True).first()
        if ls:
            mode = ls.values.get("mode", "on")
        rows.append({"id": lid, "title": layer.name, "description": layer.description,
                     "stage": getattr(layer.stage, "value", layer.stage),
                     "mode": mode, "configured": lid in configured})
    return render(request, "webadmin/layers.html", {"menu": "security", "title": "Layer settings", "layers": rows})


@roles(*SETTINGS_ADMINS)
def layer_edit(request: HttpRequest, layer_id: str) -> HttpResponse:
    from gateway_milter import layers

    if layer_id not in layers.available():
        raise Http404("no such layer")
    p = access.principal(request.user)
    managed = access.domains_managed_by(request.user)
    dom_param = request.GET.get("domain") or request.POST.get("domain") or ""
    domain = access.access_domain(request.user, dom_param, manage=True) if dom_param else None
    if domain is None and not p.is_global:
        first = managed.first()
        if first is None:
            raise Http404("no domain")
        domain = first
    cls = layers.get(layer_id).Settings
    row = LayerSetting.objects.filter(layer=layer_id, domain=domain).first()
    base = LayerSetting.objects.filter(layer=layer_id, domain__isnull=True).first()
    current = {**(base.values if base else {}), **(row.values if row else {})}
    try:
        initial = settings_to_dict(settings_from_dict(cls, current))
    except SettingsError:
        initial = settings_to_dict(cls())
    initial = services.shown_settings(layer_id, initial, domain, p.is_global)
    form = layer_settings_form(cls, initial, request.POST or None, layerdocs.setting_help(layer_id))
    if domain is not None and not p.is_global:
        # a domain administrator sees the global-only fields as they are, and cannot send them
        # (a disabled field takes its initial value whatever the browser posts)
        for name in sorted(services.global_only_fields(layer_id)):
            form.fields[name].disabled = True
            form.fields[name].help_text = f"set by a global administrator; {form.fields[name].help_text}"
    if request.method == "POST" and form.is_valid():
        values = layer_values_from_form(cls, form)
        if domain is not None and not p.is_global:  # (disabled: what they show is not theirs to send)
            values = {k: v for k, v in values.items() if k not in services.global_only_fields(layer_id)}
        if not form.errors:
            if domain is not None:  # store only what differs from the global settings
                glob = settings_to_dict(settings_from_dict(cls, base.values if base else {}))
                values = {k: v for k, v in values.items() if glob.get(k) != v}
            try:
                warnings = services.do_set_layer_settings(layer_id, values, domain, actor=_actor(request),
                                                          by=request.user)
            except SettingsError as e:
                add_settings_error(form, e, f"settings.{layer_id}.")
            else:
                messages.success(request, f"{layers.get(layer_id).name} settings saved and published.")
                for w in warnings or ():  # (e.g. skip_rules names the rule set does not have)
                    messages.warning(request, w)
                return redirect(request.get_full_path())
    return render(request, "webadmin/layer.html", {
        "menu": "security", "title": f"{layers.get(layer_id).name} settings", "layer_id": layer_id, "form": form,
        "domain": domain, "domains": managed, "is_global": p.is_global, "description": layers.get(layer_id).description},
        status=400 if form.is_bound and form.errors else 200)  # (a refused form: 400, as the other forms answer)


# -- DKIM signing keys (gateway_milter.auth.keystore) ---------------------------------------------
def _keystore():  # type: ignore[no-untyped-def]
    try:
        from gateway_milter.auth.keystore import get_keystore
    except ImportError:
        raise Http404("DKIM key store not installed") from None
    return get_keystore()


@roles(*SETTINGS_ADMINS)
def dkim_keys(request: HttpRequest) -> HttpResponse:
    """Signing keys per visible domain with the TXT records to publish; generate, rotate,
    activate (RFC 6376 section 3.1: selectors make rotation possible)."""
    from gateway_milter.auth.keystore import KeyStoreError, zone_lines

    ks = _keystore()
    domains = list(access.domains_managed_by(request.user))
    if request.method == "POST":
        dom = access.access_domain(request.user, request.POST.get("domain"), manage=True)
        act = request.POST.get("action")
        algo = request.POST.get("algorithm", "rsa-sha256")
        try:
            if act == "generate":
                ks.generate(dom.name, "bulwark1", algo)
                messages.success(request, f"Key bulwark1 created for {dom.name}: publish its TXT record.")
            elif act == "rotate":
                sel, _ = ks.rotate(dom.name, algo)
                messages.success(request, f"New key {sel} for {dom.name}: publish it, then activate it.")
            elif act == "activate":
                ks.activate(dom.name, request.POST.get("selector", ""))
                messages.success(request, f"{dom.name} now signs with {request.POST.get('selector')}.")
        except KeyStoreError as e:
            messages.error(request, str(e))
        return redirect("webadmin:dkim_keys")
    rows = []
    for d in domains:
        active = ks.active_selector(d.name)
        keys = []
        for sel in ks.selectors(d.name):
            try:
                rec = ks.dns_record(d.name, sel)
            except KeyStoreError:
                rec = ""
            keys.append({"selector": sel, "active": sel == active, "record": rec,
                         "zone": zone_lines(d.name, sel, rec) if rec else ""})
        rows.append({"domain": d, "keys": keys})
    return render(request, "webadmin/dkim.html", {"menu": "security", "title": "DKIM keys", "rows": rows})


@roles(*SETTINGS_ADMINS)
def policy_order(request: HttpRequest) -> HttpResponse:
    """The scripts the milter runs, in order, for one scope: system scripts generated from the
    settings pages (read-only) and administrators' scripts at their positions."""
    from gateway_milter.policy.snapshot import PolicySnapshot
    from webadmin.models import PublishedPolicy

    try:
        from gateway_milter.sieve.policy import build_plan
    except ImportError:
        raise Http404("the Sieve policy engine is not installed") from None
    p = access.principal(request.user)
    managed = access.domains_managed_by(request.user)
    dom_param = request.GET.get("domain") or ""
    domain = access.access_domain(request.user, dom_param, manage=True) if dom_param else None
    if domain is None and not p.is_global:
        domain = managed.first()
        if domain is None:
            raise Http404("no domain")
    pub = PublishedPolicy.objects.order_by("-version").first()
    steps, error = [], ""
    if pub is not None:
        try:
            plan = build_plan(PolicySnapshot(pub.document, pub.version), domain.name if domain else None)
        except Exception as e:  # noqa: BLE001 - a broken published policy is shown, not a 500
            error = f"the published policy cannot be compiled: {e}"
        else:
            own = set(access.scripts_visible_to(request.user).values_list("name", flat=True))
            for kind, scripts in (("message", plan.message), ("recipient", plan.recipient)):
                for s in scripts:
                    steps.append({"name": s.name, "system": s.system, "stage": kind,
                                  "source": s.source if (s.system or s.name in own) else "",
                                  "layer": s.layer_id or ""})
    return render(request, "webadmin/policy_order.html", {
        "menu": "security", "title": "Policy order", "steps": steps, "error": error, "domain": domain,
        "domains": managed, "is_global": p.is_global, "version": pub.version if pub else None})
