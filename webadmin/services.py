"""State changes of the policy: every one is a ``do_*`` function in one transaction that ends by
publishing a new policy snapshot (the milter picks it up within GATEWAY_POLICY_POLL seconds)."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from gateway_milter.layers.base import SettingsError
from gateway_milter.policy.snapshot import FORMAT_VERSION, validate_document
from webadmin.models import (
    Domain,
    GatewaySetting,
    LayerSetting,
    ListEntry,
    PublishedPolicy,
    SieveScript,
    TrustedNetwork,
)


def build_policy_document() -> dict[str, Any]:
    """The whole configuration as the documented policy document (docs/policy/file.md)."""
    gateway = {s.key: s.value for s in GatewaySetting.objects.all()}
    settings: dict[str, Any] = {}
    per_domain: dict[int, dict[str, Any]] = {}
    for ls in LayerSetting.objects.all():
        if ls.domain_id is None:
            settings[ls.layer] = ls.values
        else:
            per_domain.setdefault(ls.domain_id, {})[ls.layer] = ls.values
    domains = [
        {"name": d.name, "settings": per_domain.get(d.pk, {}), "mail_servers": list(d.mail_servers),
         "aliases": list(d.aliases)}
        for d in Domain.objects.all()
    ]
    names = {d.pk: d.name for d in Domain.objects.all()}
    lists = [
        {"list": e.list, "kind": e.kind, "value": e.value, "domain": names.get(e.domain_id) if e.domain_id else None,
         "comment": e.comment}
        for e in ListEntry.objects.all()
    ]
    scripts = [
        {"name": s.name, "source": s.source, "domain": names.get(s.domain_id) if s.domain_id else None,
         "position": s.position, "enabled": s.enabled}
        for s in SieveScript.objects.all()
    ]
    return {
        "format": FORMAT_VERSION,
        "gateway": gateway,
        "settings": settings,
        "domains": domains,
        "trusted_networks": [n.network for n in TrustedNetwork.objects.all()],
        "lists": lists,
        "scripts": scripts,
    }


def do_publish_policy(actor: str = "") -> PublishedPolicy:
    """Validate the current configuration and publish it as a new version."""
    import hashlib
    import json

    doc = validate_document(build_policy_document())
    fp = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32]
    latest = PublishedPolicy.objects.order_by("-version").first()
    if latest is not None and latest.fingerprint == fp:
        return latest
    return PublishedPolicy.objects.create(document=doc, fingerprint=fp, created_by=actor[:150])


@transaction.atomic
def do_import_policy(raw: Any, actor: str = "") -> PublishedPolicy:
    """Replace the whole configuration by ``raw`` (a parsed YAML/JSON document).

    Validation happens first and covers everything; on any error a SettingsError naming the
    field is raised and nothing is changed.
    """
    doc = validate_document(raw)
    GatewaySetting.objects.all().delete()
    LayerSetting.objects.all().delete()
    ListEntry.objects.all().delete()
    SieveScript.objects.all().delete()
    TrustedNetwork.objects.all().delete()
    Domain.objects.all().delete()
    for k, v in doc["gateway"].items():
        GatewaySetting.objects.create(key=k, value=v)
    for layer, values in doc["settings"].items():
        LayerSetting.objects.create(layer=layer, domain=None, values=values)
    by_name: dict[str, Domain] = {}
    for d in doc["domains"]:
        dom = Domain.objects.create(name=d["name"], mail_servers=d["mail_servers"], aliases=d["aliases"])
        by_name[dom.name] = dom
        for layer, values in d["settings"].items():
            LayerSetting.objects.create(layer=layer, domain=dom, values=values)
    for n in doc["trusted_networks"]:
        TrustedNetwork.objects.create(network=n)
    ListEntry.objects.bulk_create([
        ListEntry(list=e["list"], kind=e["kind"], value=e["value"],
                  domain=by_name[e["domain"]] if e["domain"] else None, comment=e["comment"])
        for e in doc["lists"]
    ])
    for i, s in enumerate(doc["scripts"]):
        SieveScript.objects.create(name=s["name"], source=s["source"],
                                   domain=by_name[s["domain"]] if s["domain"] else None,
                                   position=s["position"], enabled=s["enabled"], order=i)
    return do_publish_policy(actor)


def do_add_list_entry(list_name: str, kind: str, value: str, domain: Domain | None = None, comment: str = "",
                      actor: str = "") -> ListEntry:
    from gateway_milter.policy.lists import validate_entry

    entry = validate_entry({"list": list_name, "kind": kind, "value": value,
                            "domain": domain.name if domain else None, "comment": comment}, "entry")
    with transaction.atomic():
        obj, _ = ListEntry.objects.get_or_create(list=entry.list, kind=entry.kind, value=entry.value, domain=domain,
                                                 defaults={"comment": entry.comment})
        do_publish_policy(actor)
    return obj


def do_set_layer_settings(layer: str, values: dict[str, Any], domain: Domain | None = None, actor: str = "") -> None:
    """Replace one layer's settings (global or for a domain); validated before saving."""
    from gateway_milter import layers
    from gateway_milter.layers.base import settings_from_dict

    if layer not in layers.REGISTRY:
        raise SettingsError(f"settings.{layer}", "unknown layer")
    settings_from_dict(layers.get(layer).Settings, values, f"settings.{layer}.")
    with transaction.atomic():
        LayerSetting.objects.update_or_create(layer=layer, domain=domain, defaults={"values": values})
        do_publish_policy(actor)
