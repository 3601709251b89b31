"""Security → Anti-spam state: what each Bayes scope learned (and forgetting it), and for global
administrators the greylisting state (removing a network's auto-pass, clearing everything).
Reads, permission checks and changes are webadmin/antispam_state.py's; destructive actions
ask on a page of their own first, so they need no JavaScript to be confirmed."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from gateway_milter.store import StoreError
from webadmin import access, antispam_state, services
from webadmin.guards import GLOBAL, SETTINGS_ADMINS, roles


def _actor(request: HttpRequest) -> str:
    return request.user.get_username()


def time_left(seconds: int) -> str:
    """``35 days 23 hours``, ``1 hour``, ``42 seconds``: the largest unit and the next one."""
    units = (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))
    for i, (unit, size) in enumerate(units):
        n, rest = divmod(seconds, size)
        if n or size == 1:
            out = f"{n} {unit}{'' if n == 1 else 's'}"
            if i + 1 < len(units) and rest // units[i + 1][1]:
                m, unit2 = rest // units[i + 1][1], units[i + 1][0]
                out += f" {m} {unit2}{'' if m == 1 else 's'}"
            return out
    return "0 seconds"


@roles(*SETTINGS_ADMINS)
def antispam(request: HttpRequest) -> HttpResponse:
    p = access.principal(request.user)
    snapshot = services.current_snapshot()
    ctx: dict[str, Any] = {"menu": "security", "title": "Anti-spam state", "is_global": p.is_global,
                           "listing": None, "grey": None, "networks": [], "error": ""}
    try:
        ctx["listing"] = antispam_state.bayes_listing(p, snapshot)
        if p.is_global:
            grey = ctx["grey"] = antispam_state.greylist_state(snapshot)
            ctx["networks"] = [{"state": n, "left": "never" if n.ttl is None else time_left(n.ttl)}
                               for n in grey.networks]
    except StoreError as e:
        ctx["error"] = f"The state store cannot be read: {e}"
    return render(request, "webadmin/antispam.html", ctx)


@roles(*SETTINGS_ADMINS)
def bayes_wipe(request: HttpRequest) -> HttpResponse:
    """GET: what the scope learned and a button to forget it; POST: forget it."""
    p = access.principal(request.user)
    snapshot = services.current_snapshot()
    raw = request.POST.get("scope") if request.method == "POST" else request.GET.get("scope")
    try:
        scope = antispam_state.access_bayes_scope(p, raw, snapshot)
    except antispam_state.StateInputError as e:
        messages.error(request, str(e))
        return redirect("webadmin:antispam")
    try:
        if request.method == "POST":
            if antispam_state.do_wipe_bayes_scope(scope, _actor(request)):
                messages.success(request, f"Scope {scope}: everything it learned is forgotten.")
            else:
                messages.info(request, f"Scope {scope} had learned nothing.")
            return redirect("webadmin:antispam")
        state = antispam_state.bayes_state([scope], snapshot)[0]
    except StoreError as e:
        messages.error(request, f"The state store cannot be reached: {e}")
        return redirect("webadmin:antispam")
    return render(request, "webadmin/antispam_confirm.html", {
        "menu": "security", "title": f"Forget what {scope} learned", "scope": scope, "state": state,
        "question": (f"Forget every message scope {scope} learned: its token counts and its token model. "
                     "Until it has learned enough again, mail falls back to the next scope."),
        "action": "webadmin:antispam_bayes_wipe", "fields": {"scope": scope},
        "button": "Forget what this scope learned"})


@require_POST
@roles(*GLOBAL)
def greylist_network_remove(request: HttpRequest) -> HttpResponse:
    try:
        network = antispam_state.parse_network(request.POST.get("network"))
        antispam_state.do_remove_greylist_network(network, _actor(request))
    except antispam_state.StateInputError as e:
        messages.error(request, str(e))
    except Http404:
        messages.info(request, "That network has no greylisting entry (it may have expired).")
    except StoreError as e:
        messages.error(request, f"The state store cannot be reached: {e}")
    else:
        messages.success(request, f"Network {network} removed: its clients are greylisted again.")
    return redirect("webadmin:antispam")


@roles(*GLOBAL)
def greylist_clear(request: HttpRequest) -> HttpResponse:
    """GET: the confirmation; POST: forget all greylisting state."""
    if request.method == "POST":
        try:
            n = antispam_state.do_clear_greylist(_actor(request))
        except StoreError as e:
            messages.error(request, f"The state store cannot be reached: {e}")
        else:
            messages.success(request, f"Greylisting state cleared ({n} entries).")
        return redirect("webadmin:antispam")
    return render(request, "webadmin/antispam_confirm.html", {
        "menu": "security", "title": "Clear all greylisting state", "state": None,
        "question": ("Forget every pending and passed triplet and every client network's pass count: "
                     "each sender is greylisted again on its next attempt."),
        "action": "webadmin:antispam_greylist_clear", "fields": {}, "button": "Clear all greylisting state"})


# -- Scan a message ---------------------------------------------------------------------------------
@roles(*SETTINGS_ADMINS)
def scan_form(request: HttpRequest) -> HttpResponse:
    """GET: the form; POST: start a scan (webadmin/scantool.py) and go to its page."""
    from webadmin import scantool

    from django.core.exceptions import RequestDataTooBig

    p = access.principal(request.user)
    error: scantool.ScanError | None = None
    try:
        post = request.POST
    except RequestDataTooBig:  # (Django's DATA_UPLOAD_MAX_MEMORY_SIZE; uploaded files do not count)
        post = QueryDict()
        error = scantool.ScanError("message", "The pasted message is too large to send as text: choose it as a "
                                              f"file (up to {scantool.MAX_MESSAGE // (1024 * 1024)} MB).")
    form: dict[str, Any] = {k: post.get(k, "") for k in ("message", "ip", "helo", "sender", "recipients", "auth")}
    form["network"] = post.get("network") == "on"
    if request.method == "GET" and request.GET.get("from"):  # "Change and scan": an earlier scan's input
        earlier = scantool.form_values(request.GET["from"], request.user.pk)
        if earlier is None:
            raise Http404("no such scan")
        form = earlier
    if request.method == "POST" and error is None:
        upload = request.FILES.get("file")
        if upload is not None and upload.size is not None and upload.size > scantool.MAX_MESSAGE:
            error = scantool.ScanError("message", f"The file is larger than {scantool.MAX_MESSAGE // (1024 * 1024)} MB.")
        else:
            raw = upload.read() if upload is not None else form["message"].replace("\r\n", "\n").encode("utf-8")
            try:
                req = scantool.parse_request(raw, ip=form["ip"], helo=form["helo"], sender=form["sender"],
                                             recipients=form["recipients"], auth=form["auth"],
                                             network=form["network"], domains=None if p.is_global else p.domains)
                token = scantool.start(req, request.user.pk)
            except scantool.ScanError as e:
                error = e
            else:
                return redirect("webadmin:antispam_scan_result", token)
    return render(request, "webadmin/scan.html", {
        "menu": "security", "title": "Scan a message", "form": form, "error": error, "is_global": p.is_global,
        "domains": sorted(p.domains), "max_mb": scantool.MAX_MESSAGE // (1024 * 1024),
        "prefill_mb": scantool.PREFILL_MESSAGE // (1024 * 1024)}, status=400 if error else 200)


@roles(*SETTINGS_ADMINS)
def scan_result(request: HttpRequest, token: str) -> HttpResponse:
    from webadmin import scantool

    doc = scantool.read(token, request.user.pk)
    if doc is None:
        raise Http404("no such scan")
    return render(request, "webadmin/scan_result.html", {"menu": "security", "title": "Scan result", "scan": doc,
                                                         "result": doc.get("result"), "token": token,
                                                         "is_global": access.principal(request.user).is_global})


@require_POST
@roles(*SETTINGS_ADMINS)
def scan_again(request: HttpRequest, token: str) -> HttpResponse:
    """Scan the same message with the same settings again (after a change of rules or policy)."""
    from webadmin import scantool

    p = access.principal(request.user)
    try:
        req = scantool.again(token, request.user.pk, None if p.is_global else p.domains)
        if req is None:
            raise Http404("no such scan")
        new = scantool.start(req, request.user.pk)
    except scantool.ScanError as e:
        messages.error(request, e.message)
        return redirect("webadmin:antispam_scan_result", token)
    return redirect("webadmin:antispam_scan_result", new)


@require_POST
@roles(*SETTINGS_ADMINS)
def scan_learn(request: HttpRequest, token: str) -> HttpResponse:
    """Learn the scanned message as spam or ham (a missed spam, a wrongly flagged newsletter):
    the Bayes task learns the stored copy in the scopes the actor administers (scantool.learn_scopes)."""
    from webadmin import scantool

    done = scantool.finished(token, request.user.pk)
    if done is None:
        raise Http404("no such scan")
    doc, path = done
    label = request.POST.get("label")
    if label not in ("spam", "ham"):
        messages.error(request, "Choose spam or ham.")
        return redirect("webadmin:antispam_scan_result", token)
    try:
        scopes = scantool.learn(token, doc, path, label, access.principal(request.user), _actor(request))
    except scantool.ScanError as e:
        messages.error(request, e.message)
    else:
        messages.success(request, f"Learned as {label} in {', '.join(scopes)}.")
    return redirect("webadmin:antispam_scan_result", token)


# -- Train Bayes from a mailbox -------------------------------------------------------------------------
@roles(*SETTINGS_ADMINS)
def train_form(request: HttpRequest) -> HttpResponse:
    """GET: the form; POST: store the upload, start learning it (webadmin/training.py) and go to
    its progress page."""
    from webadmin import training

    scopes = training.scopes_for(request.user)
    error: training.TrainingError | None = None
    form = {"label": request.POST.get("label", ""), "scope": request.POST.get("scope", scopes[0] if scopes else "")}
    if request.method == "POST":
        upload = request.FILES.get("file")
        try:
            if upload is None:
                raise training.TrainingError("file", "Choose a file: a message (.eml), an mbox file or a zip of them.")
            token = training.start(upload, upload.size, form["label"], form["scope"], request.user.pk, scopes,
                                   _actor(request))
        except training.TrainingError as e:
            error = e
        else:
            return redirect("webadmin:antispam_train_job", token)
    return render(request, "webadmin/train.html", {
        "menu": "security", "title": "Train Bayes", "form": form, "scopes": scopes, "error": error,
        "options": _scope_options(scopes),
        "max_mb": training.MAX_UPLOAD // (1024 * 1024), "max_messages": f"{training.MAX_MESSAGES:,}"},
        status=400 if error else 200)


@roles(*SETTINGS_ADMINS)
def train_job(request: HttpRequest, token: str) -> HttpResponse:
    from webadmin import training

    job = training.read(token, request.user.pk)
    if job is None:
        raise Http404("no such training")
    state = _scope_states([job["scope"]]).get(job["scope"]) if job["state"] != "running" else None
    return render(request, "webadmin/train_job.html", {"menu": "security", "title": "Train Bayes", "job": job,
                                                       "scope_state": state})


def _rules_building(request: HttpRequest) -> HttpResponse:
    """503 while the published rule set is built in the background; the page reloads itself."""
    r = render(request, "webadmin/rules_building.html", {"menu": "security", "title": "Heuristic rules"}, status=503)
    r["Retry-After"] = "3"
    return r


def _scope_options(scopes: list[str]) -> list[tuple[str, str]]:
    """(scope, what the form shows for it): with what it has learned and whether Bayes reads it."""
    states = _scope_states(scopes)
    out = []
    for s in scopes:
        st = states.get(s)
        label = s if st is None else (f"{s} — {st.spam_learned} spam, {st.ham_learned} ham learned; "
                                      + ("in use" if st.in_use else f"not read yet: {st.note}"))
        out.append((s, label))
    return out


def _scope_states(scopes: list[str], most: int = 50) -> dict[str, antispam_state.ScopeState]:
    """What each scope has learned and whether Bayes reads it (for the training pages; one store
    read a scope, so not for more than ``most``; none when the store cannot be read)."""
    if not scopes or len(scopes) > most:
        return {}
    try:
        return {s.scope: s for s in antispam_state.bayes_state(scopes, services.current_snapshot())}
    except StoreError:
        return {}


# -- The rule set ----------------------------------------------------------------------------------------
@roles(*SETTINGS_ADMINS)
def rules_browser(request: HttpRequest) -> HttpResponse:
    """The published rule set, rule by rule, with points and recent hits (webadmin/rulesbrowser.py)."""
    from webadmin import rulesbrowser

    query = request.GET.get("q", "")[:100]
    only = request.GET.get("only", "")
    only = only if only in ("hits", "good", "scored") else ""
    subrules = request.GET.get("sub") == "1"
    try:
        page = max(1, int(request.GET.get("page", "1")))
    except ValueError:
        page = 1
    if not rulesbrowser.ready(services.current_snapshot()):
        # (the first visit after the web server starts: the build runs in the background, the
        # page reloads itself instead of holding a worker for it)
        return _rules_building(request)
    snapshot = services.current_snapshot()
    p = access.principal(request.user)
    domain = rulesbrowser.points_domain(snapshot, p, request.GET.get("domain", "")[:255])
    rows, read = rulesbrowser.catalogue(snapshot, access.messages_visible_to(request.user),
                                        query=query, subrules=subrules, only=only, domain=domain)
    shown, page, pages = rulesbrowser.page_of(rows, page)
    choices = sorted(snapshot.domain_names if p.is_global else p.domains)
    return render(request, "webadmin/rules_browser.html", {
        "menu": "security", "title": "Heuristic rules", "rows": shown, "total": len(rows), "read": read,
        "query": query, "only": only, "subrules": subrules, "page": page, "pages": pages,
        "is_global": p.is_global, "domain": domain or "", "domains": choices})



@roles(*GLOBAL)
def rule_points(request: HttpRequest) -> HttpResponse:
    """GET: a rule's points and a form to change them; POST: write ``score NAME points`` into the
    rules layer's own rules (or take it out: ``reset``) and publish (webadmin/rulesbrowser.py)."""
    from gateway_milter.layers.base import SettingsError
    from webadmin import rulesbrowser

    name = (request.POST.get("name") if request.method == "POST" else request.GET.get("name")) or ""
    if not rulesbrowser.RULE_NAME.fullmatch(name):
        raise Http404("no such rule")
    snapshot = services.current_snapshot()
    if not rulesbrowser.ready(snapshot):
        return _rules_building(request)
    rows, _ = rulesbrowser.catalogue(snapshot, access.messages_visible_to(request.user).none(), query=name,
                                     subrules=True)
    row = next((r for r in rows if r.name == name), None)
    if row is None:
        raise Http404("no such rule")
    from webadmin.models import LayerSetting

    # the global settings as stored: a save replaces them all, so only their own rules change
    stored = LayerSetting.objects.filter(layer="rules", domain__isnull=True).first()
    values = dict(stored.values) if stored else {}
    local_rules = values.get("local_rules") if isinstance(values.get("local_rules"), str) else ""
    error = ""
    if request.method == "POST":
        try:
            points = None if "reset" in request.POST else rulesbrowser.parse_points(request.POST.get("points", ""))
        except ValueError as e:
            error = str(e) if "-100" in str(e) else "points are a number from -100 to 100"
        else:
            try:
                services.do_set_layer_settings(
                    "rules", {**values, "local_rules": rulesbrowser.with_score(local_rules, name, points)},
                    None, actor=_actor(request), by=request.user)
            except SettingsError as e:
                error = e.message
            else:
                messages.success(request, f"{name}: " + (f"{points:g} points" if points is not None
                                                         else "back to the points it had")
                                 + ", published. The rule set is rebuilt in the background: the list shows the"
                                   " change within seconds (up to half a minute for Debian's rules).")
                return redirect(reverse("webadmin:antispam_rules") + "?" + urlencode({"q": name}))
    own = rulesbrowser.has_score(local_rules, name)  # (a score line of the admin's own rules)
    return render(request, "webadmin/rule_points.html", {
        "menu": "security", "title": f"Points of {name}", "row": row, "error": error, "own": own,
        "value": request.POST.get("points", "") if error else f"{row.points:g}"}, status=400 if error else 200)
