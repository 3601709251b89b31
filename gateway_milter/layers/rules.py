"""Heuristic rules in SpamAssassin's format (Mail::SpamAssassin::Conf), loaded natively from
Debian's ``spamassassin`` package (/usr/share/spamassassin) plus local rule directories.

Each rule that hits becomes a symbol with its SpamAssassin name and score (score set 2:
Bayes on, network tests off — our dnsbl/uribl layers do those). Unsupported rules never run
and are listed by ``manage.py rules check``. A rule set is compiled once per process (up to
four kept: rules settings may differ per domain; ``engine.MAX_ENGINES``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway_milter.antispam.engine import RuleEngine, engine_for
from gateway_milter.antispam.relays import parse_network
from gateway_milter.antispam.saview import message_view
from gateway_milter.layers.base import BaseSettings, Layer, LayerFindings, SettingsError
from gateway_milter.verdict import FailMode, Stage

if TYPE_CHECKING:
    from gateway_milter.context import MessageContext


@dataclass(frozen=True, slots=True)
class RulesSettings(BaseSettings):
    rule_dirs: tuple[str, ...] = ()  # local rule directories/files, read after the Debian set
    include_default: bool = True  # the rules of Debian's spamassassin package
    score_set: int = 2  # SpamAssassin score set: 0 plain, 1 net, 2 Bayes, 3 Bayes+net
    max_size: int = 1_000_000  # larger messages are matched on their first max_size bytes
    use_bayes: bool = True  # feed the Bayes probability to the BAYES_* rules used in metas
    skip_rules: tuple[str, ...] = ()  # rules not to run (with the metas built on them), e.g. costly ones
    # The trust path (X-Spam-Relays-* pseudo-headers; SpamAssassin's trusted_networks,
    # internal_networks, msa_networks): relays in these networks (loopback always) are trusted /
    # internal; "!net" excludes. None configured: the gateway's trusted networks when
    # trust_policy_networks and the policy has some, else SpamAssassin's inference (private
    # addresses and authenticated hops trusted). docs/layers/rules.md
    trusted_networks: tuple[str, ...] = ()
    internal_networks: tuple[str, ...] = ()
    msa_networks: tuple[str, ...] = ()
    trust_policy_networks: bool = True

    def __post_init__(self) -> None:
        BaseSettings.__post_init__(self)
        if self.score_set not in (0, 1, 2, 3):
            raise SettingsError("score_set", "must be 0, 1, 2 or 3")
        if self.max_size < 10_000:
            raise SettingsError("max_size", "must be at least 10000")
        for name in ("trusted_networks", "internal_networks", "msa_networks"):
            for i, net in enumerate(getattr(self, name)):
                try:
                    parse_network(str(net).strip().lstrip("!"))
                except ValueError:
                    raise SettingsError(f"{name}[{i}]", f"{net!r} is not an IP network") from None


# tflags of rules whose points autolearn leaves out (SpamAssassin's PerMsgStatus::_get_autolearn_points)
NOT_AUTOLEARNED_TFLAGS = frozenset({"noautolearn", "userconf"})


def engine_from_settings(settings: RulesSettings) -> RuleEngine:
    return engine_for(*rule_set_of(settings))


def rule_set_of(settings: RulesSettings) -> tuple[tuple[str, ...], int, bool, tuple[str, ...]]:
    """What names a rule set (one engine): settings that differ only elsewhere share it."""
    return tuple(settings.rule_dirs), settings.score_set, settings.include_default, tuple(settings.skip_rules)


_warming: set[tuple[object, ...]] = set()
_warm_lock = threading.Lock()


def warm_up(settings: RulesSettings | None = None, wait: bool = False) -> None:
    """Build the rule engine ahead of the first message (a few seconds for the Debian set).
    The milter calls this at start-up; ``prefetch`` calls it too."""
    s = settings or RulesSettings()
    key = rule_set_of(s)
    with _warm_lock:
        started = key in _warming
        _warming.add(key)
    if wait:
        engine_from_settings(s)
    elif not started:
        threading.Thread(target=engine_from_settings, args=(s,), daemon=True, name="rules-warm-up").start()


class HeuristicRulesLayer(Layer[RulesSettings]):
    id = "rules"
    stage = Stage.EOM
    # A crash here is a bug or hostile input we did not bound: tempfail rather than "clean".
    fail_mode = FailMode.TEMPFAIL
    Settings = RulesSettings
    budget_s = 10.0
    description = "SpamAssassin-format heuristic rules (header, body, uri, meta, ...)"

    def prefetch(self, ctx: MessageContext, settings: RulesSettings) -> None:
        """Compile the rule set in the background at connect (first message of a process)."""
        warm_up(settings)

    def check(self, ctx: MessageContext, settings: RulesSettings) -> LayerFindings:
        engine = engine_from_settings(settings)
        view = message_view(ctx)
        extra: dict[str, object] = {}
        if settings.use_bayes:
            from gateway_milter import layers

            if "bayes" in layers.available():
                p = ctx.layer("bayes").fact("probability")
                if isinstance(p, float):
                    extra["bayes_probability"] = p
        res = engine.run(view, extra)
        symbols = tuple(self.symbol(h.name, h.score, h.describe) for h in res.hits)
        facts: dict[str, object] = {"score": res.score, "hits": [h.name for h in res.hits], "ms": round(res.ms, 2)}
        # hits whose points autolearn leaves out (tflags noautolearn or userconf, as
        # SpamAssassin's _get_autolearn_points): read by the scoring layer, from the rule set
        # that ran, so that it never looks up (or builds) a rule set itself
        quiet = [h.name for h in res.hits if (r := engine.rules.get(h.name)) is not None and r.tflags & NOT_AUTOLEARNED_TFLAGS]
        if quiet:
            facts["not_autolearned"] = quiet
        return LayerFindings(facts, symbols)
