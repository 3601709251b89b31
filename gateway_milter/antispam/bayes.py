"""Bayesian classifier: Robinson's token probabilities with Fisher's chi-square combining
(Robinson 2003, as in SpamBayes and SpamAssassin's Bayes), over the features of
:mod:`.tokenizer`. Why this one, with figures: docs/decisions/0042-bayes-classifier.md.

Token counts live in the state store (:mod:`gateway_milter.store`), one counter hash per scope
(``bayes2:global``, ``bayes2:dom:<domain>``, ``bayes2:user:<address>``) holding ``t<token>``
(messages of each class containing the token, packed in one counter: spam count x 2^32 + ham
count, so that a message reads and writes one field per token instead of two), ``#s``/``#h``
(messages learned) and ``m<sha>`` (the class a message was learned as, for idempotent
training). Stores of the first format (``bayes:``, ``s``/``h`` fields) are not read: retrain. Classifying a
message reads every candidate scope in ONE store round trip and uses the most specific scope
that has learned at least ``min_learned`` messages of each class.

Beside the counts, each scope has a second, discriminative model over the same features and
the order of the header fields the sender wrote (``tokenizer.header_order``, which the counts do
not learn; docs/decisions/0058-header-order.md):
logistic regression learned online (one AdaGrad step per learned message), whose logit
``token_logit`` the scoring layer weighs as one more input (docs/decisions/0056-token-model.md).
Its weights live in ``bayes2w:<scope>`` (field: the token's key; value: the weight in
millionths, stored modulo ``W_MOD``: every writer that finds the field empty adds ``W_MOD``
once, so concurrent first writers still decode to the sum of their steps and the field never
reaches 0, which the stores delete), read in the same round trip as the counts; AdaGrad's sums
of squared gradients (billionths) in ``bayes2g:<scope>``, read only when learning. Hashes of
their own keep the counts' hash, which every classification reads, as small as before. The
weights' hash also counts the steps the model took toward each class (``#s``/``#h``): like
the counts, the model is used only once it has learned ``min_learned`` messages of each class (a store learned before
the model existed has counts but no model; ``token_logit`` is then None).
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from gateway_milter.antispam.saview import SaMessage
from gateway_milter.antispam.tokenizer import hashed, header_order, sender_key, tokens
from gateway_milter.store import GuardedUpdate, StateStore, check_key
from gateway_milter.store.countertable import CounterTable

# SpamBayes defaults (tuned on large corpora; our figures in the ADR).
UNKNOWN_STRENGTH = 0.45  # s: weight of the prior for rarely seen tokens
UNKNOWN_PROB = 0.5  # x: prior probability of an unseen token
MIN_STRENGTH = 0.1  # ignore tokens with |f - 0.5| below this
MAX_DISCRIMINATORS = 150
TOKEN = "t"
SPAM_UNIT = 1 << 32  # a token field is spam_count * SPAM_UNIT + ham_count
HAM_MASK = SPAM_UNIT - 1
T = TypeVar("T")
LEARN_TRIES = 3  # reads of a batch's messages that another learner wrote between our read and write
# the token model (docs/decisions/0056-token-model.md): AdaGrad's rate and L2 strength, chosen
# by the score fit's own cross-validation on the training part (rate 0.25/0.5/1, L2 0 to 1e-2;
# L2 again with the header order, 3e-4/1e-3/3e-3: docs/decisions/0058-header-order.md)
LR_RATE = 0.5
LR_L2 = 3e-4
W_SCALE = 1_000_000  # weights in millionths
W_MOD = 1 << 40  # a weight field holds k * W_MOD + its value (k >= 1 once written)
W_HALF = W_MOD >> 1
G_SCALE = 1_000_000_000  # AdaGrad's sums in billionths


def weight_of(raw: int) -> float:
    """A stored weight field's value (0 for a field never written)."""
    if not raw:
        return 0.0
    return ((raw + W_HALF) % W_MOD - W_HALF) / W_SCALE


def token_logit(raws: Sequence[int]) -> float:
    """The token model's logit from the weight fields of a message's distinct features: their
    sum, divided by the square root of their number (long messages do not shout louder)."""
    total = 0
    half, mod = W_HALF, W_MOD
    for r in raws:
        if r:
            total += (r + half) % mod - half
    return total / W_SCALE / math.sqrt(len(raws)) if raws else 0.0


def token_step(wraws: Sequence[int], graws: Sequence[int], is_spam: bool) -> tuple[list[int], list[int]]:
    """One AdaGrad step of the logistic loss for a message with these stored weight and
    gradient fields: the deltas to add to each (the weight deltas include ``W_MOD`` for a field
    not yet written)."""
    n = len(wraws)
    if not n:
        return [], []
    k = 1.0 / math.sqrt(n)
    z = token_logit(wraws)
    z = -30.0 if z < -30.0 else 30.0 if z > 30.0 else z
    g = ((1.0 / (1.0 + math.exp(-z))) - (1.0 if is_spam else 0.0)) * k
    dws: list[int] = []
    dgs: list[int] = []
    for wr, gr in zip(wraws, graws, strict=True):
        w = weight_of(wr)
        gt = g + LR_L2 * w
        dg = round(gt * gt * G_SCALE)
        a = (gr + dg) / G_SCALE
        dw = round(-LR_RATE * gt / math.sqrt(a + 1e-8) * W_SCALE) if a > 0.0 else 0
        dws.append(dw + (0 if wr else W_MOD))
        dgs.append(dg)
    return dws, dgs


def order_key(raw: bytes) -> bytes:
    """A message's place in :func:`mixed_order` (a hash of its bytes)."""
    return hashlib.blake2b(raw, digest_size=8).digest()


def mixed_order(items: Sequence[T], raw_of: Callable[[T], bytes]) -> list[T]:
    """Items in an order fixed by a hash of each message's bytes: spam and ham mixed, as online
    learning needs (a corpus learned all spam first, then all ham, would leave the token model
    leaning to ham), and the same order on every run."""
    return sorted(items, key=lambda it: order_key(raw_of(it)))


def scope_key(scope: str) -> str:
    return f"bayes2:{scope}"


def weight_key(scope: str) -> str:
    """The token model's weights of a scope."""
    return f"bayes2w:{scope}"


def grad_key(scope: str) -> str:
    """The token model's AdaGrad sums of a scope (read when learning only)."""
    return f"bayes2g:{scope}"


def message_digest(m: SaMessage, raw_body: bytes | None = None) -> str:
    """Identity of a message for idempotent training: Message-ID plus the rendered text; without
    a Message-ID also its attachments' names (mail of one template, say the same subject and
    text, is told apart by what it carries; names, not contents: a copy re-encoded on its way
    to the mailbox is still the same message)."""
    h = hashlib.sha256()
    mid = (m.header("Message-ID") or "").strip()
    h.update(mid.encode("utf-8", "surrogatepass"))
    h.update(b"\0")
    h.update(m.body.encode("utf-8", "surrogatepass"))
    if not mid and m.attachment_names:
        h.update(b"\0" + "\0".join(m.attachment_names).encode("utf-8", "surrogatepass"))
    if raw_body is not None:
        h.update(raw_body)
    return h.hexdigest()[:24]


def chi2q(x2: float, v: int) -> float:
    """Survival function of chi-square with v (even) degrees of freedom."""
    m = x2 / 2.0
    total = term = math.exp(-m)
    for i in range(1, v // 2):
        term *= m / i
        total += term
    return min(total, 1.0)


def log_chi2_tails(x2: float, v: int) -> tuple[float, float]:
    """(log survival, log CDF) of chi-square with v (even) degrees of freedom, both accurate in
    the far tails where :func:`chi2q` rounds to 0 or 1 (the combined probability of most spam is
    exactly 1.0 in double precision; its log-odds still orders them). With k = v/2 and m = x2/2
    the survival is e^-m * sum(m^i/i!, i < k) and the CDF e^-m * sum(m^i/i!, i >= k); the
    smaller of the two is summed from its largest term, the other is its complement."""
    k = v // 2
    m = x2 / 2.0
    if m <= 0.0:
        return 0.0, -math.inf
    lm = math.log(m)
    if m < k:  # CDF is the small side: m^k/k! * (1 + m/(k+1) + m^2/((k+1)(k+2)) + ...)
        total = term = 1.0
        i = k
        while term > 1e-17 * total and i < k + 2000:
            i += 1
            term *= m / i
            total += term
        lp = -m + k * lm - math.lgamma(k + 1) + math.log(total)
        return (math.log1p(-math.exp(lp)) if lp < -1e-300 else -math.inf), lp
    # survival is the small side: m^(k-1)/(k-1)! * (1 + (k-1)/m + (k-1)(k-2)/m^2 + ...)
    total = term = 1.0
    for i in range(k - 1, 0, -1):
        term *= i / m
        total += term
        if term < 1e-17 * total:
            break
    lq = min(-m + (k - 1) * lm - math.lgamma(k) + math.log(total), 0.0)
    return lq, math.log1p(-math.exp(lq)) if lq < 0.0 else -math.inf


def _logaddexp(a: float, b: float) -> float:
    if a < b:
        a, b = b, a
    if b == -math.inf:
        return a
    return a + math.log1p(math.exp(b - a))


def model_keys(feature_keys: Sequence[str], m: SaMessage) -> list[str]:
    """The token model's keys of a message: its features' and its header order's
    (:func:`.tokenizer.header_order`, which the counts do not learn), each once."""
    return list(dict.fromkeys([*feature_keys, *hashed(header_order(m))]))


@dataclass(frozen=True, slots=True)
class MessageKeys:
    features: list[str]  # readable features (tokenizer.tokens), for explanations
    keys: list[str]  # their store keys, then the sender's when there is one
    nfeats: int  # how many of ``keys`` are features'
    model: list[str]  # the token model's keys (model_keys)


def message_keys(m: SaMessage) -> MessageKeys:
    """A message's features and store keys, made once per message (kept in ``m.cache``): the
    milter classifies a message and then, when autolearn takes it, learns the same view; both
    read these (tokenizing and hashing again cost about 0.3 ms a 4-6 KB message). Callers
    must not change the lists."""
    got = m.cache.get("bayes_keys")
    if got is None:
        feats = tokens(m)
        sender = sender_key(m)
        keys = hashed(feats + [sender] if sender is not None else feats)
        got = m.cache["bayes_keys"] = MessageKeys(feats, keys, len(feats), model_keys(keys[:len(feats)], m))
    return got  # type: ignore[no-any-return]


# the classification's read cache (FieldCache): seconds a generation lives, fields it holds
TTL_S = 2.5
CACHE_FIELDS = 400_000  # about 40 MB at most (two generations)


class FieldCache:
    """Counter fields a classification read from the embedded SQLite store (a store whose
    ``cache_reads`` is true), kept for a few seconds: a message's ~980 fields are mostly those
    of the messages just before it (common words, header pairs, never-learned tokens read as
    0), and a classification's read costs about 1.3 ms without it, 0.95 ms with it
    (docs/decisions/0059-background-autolearn.md).
    - What this process learns is taken out at once (:func:`forget_cached`), so its own
      classifications see it as without the cache.
    - What other processes learn is seen within 2 x ``ttl`` seconds: entries live in two
      generations, the current one becoming the old one every ``ttl`` seconds or at ``cap``
      fields, the old one dropped then.
    - Only the classification reads through it: learning and forgetting read the store.
    Threads share it without a lock: each step is one dict or table operation (atomic under the
    GIL), and a value put into a generation that another thread just aged is merely older."""

    def __init__(self, ttl: float = TTL_S, cap: int = CACHE_FIELDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl, self.cap, self.clock = ttl, cap, clock
        # per hash, its fields read: CounterTables (store/countertable.py: one cache miss a
        # field where a dict costs three)
        self.cur: dict[str, Any] = {}
        self.old: dict[str, Any] = {}
        self.size = 0
        self.born = clock()
        self.hits = 0
        self.misses = 0
        # bumped by every forget and clear: a read that saw it change while it asked the store
        # does not keep what it got (values read before this process's write would stay stale)
        self.generation = 0

    def clear(self) -> None:
        self.generation += 1
        self.cur, self.old, self.size, self.born = {}, {}, 0, self.clock()

    def _age(self) -> None:
        now = self.clock()
        if now - self.born >= self.ttl or self.size >= self.cap:
            # entries of the old generation are at most 2 x ttl old when dropped
            self.old = self.cur if now - self.born < 2 * self.ttl else {}
            self.cur, self.size, self.born = {}, 0, now

    def read(self, store: StateStore, requests: list[tuple[str, list[str]]]) -> list[list[int]]:
        self._age()
        out: list[list[int]] = []
        asks: list[tuple[str, list[str]]] = []
        where: list[tuple[int, list[int]]] = []
        for key, fields in requests:
            cur = self.cur.get(key)
            if cur is None:
                cur = self.cur[key] = CounterTable()
            vals: list[int | None] = cur.get_many(fields, None)
            missing: list[int] = []
            if None in vals:
                old = self.old.get(key)
                olds: list[int | None] = old.get_many(fields, None) if old is not None else [None] * len(fields)
                moved: list[str] = []
                moved_vals: list[int] = []
                for i, v in enumerate(vals):
                    if v is None:
                        o = olds[i]
                        if o is not None:
                            vals[i] = o
                            moved.append(fields[i])
                            moved_vals.append(o)
                            continue
                        missing.append(i)
                if moved:
                    cur.set_many(moved, moved_vals)
            self.hits += len(fields) - len(missing)
            self.misses += len(missing)
            if missing:
                where.append((len(out), missing))
                asks.append((key, [fields[i] for i in missing]))
            out.append(vals)  # type: ignore[arg-type]
        if asks:
            generation = self.generation
            got = store.counters(asks)  # one round trip for every field not at hand
            keep = self.generation == generation
            for (at, missing), (key, names), vals_got in zip(where, asks, got, strict=True):
                row = out[at]
                for i, v in zip(missing, vals_got, strict=True):
                    row[i] = v
                if not keep:
                    continue
                cur = self.cur.get(key)
                if cur is None:  # (another thread may have aged the cache)
                    cur = self.cur[key] = CounterTable()
                cur.set_many(names, vals_got)
                self.size += len(names)
        return out

    def forget(self, updates: Sequence[tuple[str, Iterable[str]]]) -> None:
        self.generation += 1
        for key, deltas in updates:
            for gen in (self.cur, self.old):
                d = gen.get(key)
                if d is not None:
                    d.discard_many(list(deltas))


_caches: weakref.WeakKeyDictionary[StateStore, FieldCache] = weakref.WeakKeyDictionary()
_caches_lock = threading.Lock()  # (made once per store)


def field_cache(store: StateStore) -> FieldCache | None:
    """The process's cache of ``store``'s counter fields; None for a store in the process's own
    memory (reading it is as fast as a cache) or one that asks for none."""
    if not getattr(store, "cache_reads", False):
        return None
    got = _caches.get(store)
    if got is None:
        with _caches_lock:
            got = _caches.get(store)
            if got is None:
                got = _caches[store] = FieldCache()
    return got


def read_counters(store: StateStore, requests: list[tuple[str, list[str]]]) -> list[list[int]]:
    cache = field_cache(store)
    if cache is None:
        return store.counters(requests)
    return cache.read(store, requests)


def forget_cached(store: StateStore, updates: Sequence[tuple[str, Iterable[str]]]) -> None:
    cache = field_cache(store)
    if cache is not None:
        cache.forget(updates)


@dataclass(frozen=True, slots=True)
class LearnItem:
    """What learning a message needs, made from its view (:func:`learn_item`): the
    background learner (antispam/learner.py) keeps this, not the message."""
    keys: MessageKeys
    digest: str
    is_spam: bool
    scopes: tuple[str, ...]


def storable_scopes(scopes: Sequence[str]) -> list[str]:
    """The scopes whose hashes' keys the store takes (``check_key``): a recipient's scope of a
    catch-all domain can be longer than a key may be, and learning or reading it would fail
    with every other scope of the message, or of a batch, beside it."""
    out: list[str] = []
    for s in scopes:
        try:
            for key in (scope_key(s), weight_key(s), grad_key(s)):
                check_key(key)
        except ValueError:
            continue
        out.append(s)
    return out


def token_pairs(keys: Sequence[str], spam: int, ham: int) -> dict[str, tuple[int, int]]:
    """The pair-counter changes of a message's token keys: ``(spam, ham)`` per occurrence."""
    pairs: dict[str, tuple[int, int]] = {}
    for k in keys:
        f = TOKEN + k
        ps, ph = pairs.get(f, (0, 0))
        pairs[f] = (ps + spam, ph + ham)
    return pairs


def learn_item(m: SaMessage, is_spam: bool, scopes: Sequence[str] = ("global",),
               digest: str | None = None) -> LearnItem:
    return LearnItem(message_keys(m), digest or message_digest(m), is_spam, tuple(storable_scopes(scopes)))


@dataclass(frozen=True, slots=True)
class Classification:
    probability: float | None  # None: no scope has learned enough
    scope: str = ""
    nspam: int = 0
    nham: int = 0
    tokens: int = 0
    used: int = 0
    clues: tuple[tuple[str, float], ...] = ()
    # log(p / (1 - p)) computed in the log domain: unlike ``probability`` it does not saturate
    # at 0 or 1, so it ranks messages of which Bayes is "certain" (the fitted scores' input)
    logodds: float = 0.0
    # messages learned as spam / as ham from the same sender (From address and network,
    # tokenizer.sender_key) in the scope used; not part of ``probability``
    sender_spam: int = 0
    sender_ham: int = 0
    # the token model's logit in the scope used; None until it has learned min_learned
    # messages of each class there
    token_logit: float | None = None


class BayesClassifier:
    def __init__(self, store: StateStore, min_learned: int = 200) -> None:
        self.store = store
        self.min_learned = min_learned

    # -- classification ---------------------------------------------------------------------------
    def classify(self, m: SaMessage, scopes: Sequence[str] = ("global",), explain: bool = False) -> Classification:
        mk = message_keys(m)
        feats, nfeats = mk.features, mk.nfeats
        # the features' fields, then the sender's (read last, in the same round trip; not one of the clues)
        fields = ["#s", "#h"] + [TOKEN + k for k in mk.keys]
        sender = len(mk.keys) > nfeats
        end = 2 + nfeats
        # the token model: its learned counts, then one weight per distinct feature and header pair
        wfields = ["#s", "#h"] + mk.model
        answers = read_counters(self.store, [(scope_key(s), fields) for s in scopes]
                                + [(weight_key(s), wfields) for s in scopes])  # one round trip at most
        for i, (scope, vals) in enumerate(zip(scopes, answers, strict=False)):
            ns, nh = vals[0], vals[1]
            if ns < self.min_learned or nh < self.min_learned:
                continue
            c = self._combine(scope, ns, nh, vals[2:end], feats if explain else None,
                              vals[end] if sender else 0)
            w = answers[len(scopes) + i]
            if w[0] < self.min_learned or w[1] < self.min_learned:
                return c  # the counts are ready, the token model is not (yet)
            return replace(c, token_logit=round(token_logit(w[2:]), 4))
        return Classification(None, tokens=nfeats)

    def _combine(self, scope: str, ns: int, nh: int, packed: Sequence[int],
                 names: Sequence[str] | None, sender: int = 0) -> Classification:
        """``packed``: per feature, spam count * SPAM_UNIT + ham count (0: never learned).
        ``names``: the features' names, to explain the verdict by its strongest clues.
        ``sender``: the sender's field, packed the same way."""
        inv_s, inv_h = 1.0 / ns, 1.0 / nh
        sx, lo, hi = UNKNOWN_STRENGTH * UNKNOWN_PROB, 0.5 - MIN_STRENGTH, 0.5 + MIN_STRENGTH
        strength, ham_mask, explain = UNKNOWN_STRENGTH, HAM_MASK, names is not None
        # Robinson's f(w) once per distinct count (a message's ~500 features have ~170): how
        # many features have each f that is strong enough, and each such f's rank key. This
        # loop and the one over the clues are most of _combine's CPU: comparisons instead of
        # min()/max() calls, the rank key made here instead of by a key function, no bookkeeping
        # for the explanation unless asked: 0.29 -> 0.18 ms per 4-6 KB corpus message
        weight: dict[float, int] = {}
        ranked: list[tuple[float, float]] = []
        f_of: dict[int, float] = {}
        for v, k in Counter(filter(None, packed)).items():  # counted in C, never-learned (0) left out
            s, h = v >> 32, v & ham_mask
            sr = s * inv_s
            if sr > 1.0:  # min(sr, 1.0), as in Robinson's paper, without the call
                sr = 1.0
            hr = h * inv_h
            if hr > 1.0:
                hr = 1.0
            n = s + h
            f = (sx + n * sr / (sr + hr)) / (strength + n)
            if explain:
                f_of[v] = f
            if f <= lo or f >= hi:
                if f in weight:
                    weight[f] += k
                else:
                    weight[f] = k
                    ranked.append((abs(f - 0.5), f))
        if not weight:
            return Classification(0.5, scope, ns, nh, len(packed), 0)
        # the clues: the MAX_DISCRIMINATORS strongest features, by (|f - 0.5|, f), largest first
        # (f is unique in ``ranked``: no ties, the order is the one a key function gives),
        # their logs added one by one in that order (the figures depend on the order of the
        # additions; features of one f are alike, whichever of them are taken)
        ranked.sort(reverse=True)
        sum_ln_f = sum_ln_1f = 0.0
        n = 0
        taken: list[tuple[float, int]] = []
        for _d, f in ranked:
            k = weight[f]
            if k > MAX_DISCRIMINATORS - n:
                k = MAX_DISCRIMINATORS - n
            c = 1e-6 if f < 1e-6 else f  # min(max(f, 1e-6), 1 - 1e-6)
            if c > 1 - 1e-6:
                c = 1 - 1e-6
            ln_f, ln_1f = math.log(c), math.log(1.0 - c)
            if k == 1:  # most f are one feature's: no loop
                sum_ln_f += ln_f
                sum_ln_1f += ln_1f
            else:
                for _ in range(k):
                    sum_ln_f += ln_f
                    sum_ln_1f += ln_1f
            if explain:
                taken.append((f, k))
            n += k
            if n >= MAX_DISCRIMINATORS:
                break
        # Fisher: spamminess S = 1 - Q(-2 sum ln(1 - f)), hamminess H = 1 - Q(-2 sum ln f),
        # p = (S - H + 1) / 2 = (S + Q_h) / 2 and 1 - p = (Q_s + H) / 2 (Q + CDF = 1 for each)
        lq_s, lp_s = log_chi2_tails(-2.0 * sum_ln_1f, 2 * n)
        lq_h, lp_h = log_chi2_tails(-2.0 * sum_ln_f, 2 * n)
        logodds = _logaddexp(lp_s, lq_h) - _logaddexp(lq_s, lp_h)
        prob = 1.0 / (1.0 + math.exp(-logodds)) if logodds > -700.0 else 0.0
        explained: tuple[tuple[str, float], ...] = ()
        if names is not None:
            # the strongest 20, and of one f the features that come last in the message first
            by_f: dict[float, list[int]] = {}
            for i, v in enumerate(packed):
                if v:
                    f = f_of[v]
                    if f in weight:
                        by_f.setdefault(f, []).append(i)
            top: list[tuple[str, float]] = []
            for f, _k in taken:
                top += [(names[i], round(f, 4)) for i in reversed(by_f[f])]
                if len(top) >= 20:
                    break
            explained = tuple(top[:20])
        return Classification(round(prob, 6), scope, ns, nh, len(packed), n, explained, round(logodds, 4),
                              sender >> 32, sender & HAM_MASK)

    # -- training ---------------------------------------------------------------------------------
    def learn(self, m: SaMessage, is_spam: bool, scopes: Sequence[str] = ("global",),
              digest: str | None = None) -> bool:
        """Learn a message as spam or ham in each scope; returns False when every scope had
        already learned it with that class (idempotent). A message learned with the other
        class is unlearned first (a correction)."""
        return self.learn_many([learn_item(m, is_spam, scopes, digest)])[0]

    def learn_many(self, items: Sequence[LearnItem]) -> list[bool]:
        """Learn messages in one read and one write, to the same store contents as learning
        them one after another (:meth:`learn`): each message's token-model step starts from the
        weights the ones before it left, a message met twice is learned once, a correction
        takes back what the batch itself learned. Per message: whether any scope learned it.
        Each message's changes in a scope are made only if the class it was learned as there is
        still the one read: when another process learned it meanwhile (autolearn, the Celery
        task, ``manage.py bayes``, the web training), that message is read and worked out again
        instead of being counted twice."""
        out = [False] * len(items)
        todo = [(i, tuple(dict.fromkeys(it.scopes))) for i, it in enumerate(items)]
        for _ in range(LEARN_TRIES):
            updates, owners = self._plan_learning(items, todo)
            if not updates:
                break
            again: dict[int, list[str]] = {}
            for (i, scope), made in zip(owners, self._write(updates), strict=True):
                if made:
                    out[i] = True
                else:
                    again.setdefault(i, []).append(scope)
            todo = [(i, tuple(ss)) for i, ss in again.items()]
            if not todo:
                break
        return out

    def _plan_learning(self, items: Sequence[LearnItem], todo: Sequence[tuple[int, tuple[str, ...]]]
                       ) -> tuple[list[GuardedUpdate], list[tuple[int, str]]]:
        """One read, then per message and scope the changes learning it makes, guarded by the
        class it was learned as there (with who they are for: item index, scope)."""
        scopes = list(dict.fromkeys(s for _i, ss in todo for s in ss))
        mfields: dict[str, list[str]] = {s: [] for s in scopes}
        model: dict[str, dict[str, None]] = {s: {} for s in scopes}
        for i, ss in todo:
            it = items[i]
            for s in ss:
                mfields[s].append("m" + it.digest)
                model[s].update(dict.fromkeys(it.keys.model))
        fields = {s: list(model[s]) for s in scopes}
        # one read: the class each scope learned each message as, and the token model's weights
        # and sums (autolearn learns in the milter's background learner: one read, one write)
        n = len(scopes)
        current = self.store.counters([(scope_key(s), mfields[s]) for s in scopes]
                                      + [(k(s), fields[s]) for s in scopes for k in (weight_key, grad_key)])
        state = {s: dict(zip(mfields[s], current[i], strict=True)) for i, s in enumerate(scopes)}
        read = {s: dict(zip(fields[s], current[n + 2 * i], strict=True)) for i, s in enumerate(scopes)}
        weights = {s: dict(read[s]) for s in scopes}
        sums = {s: dict(zip(fields[s], current[n + 2 * i + 1], strict=True)) for i, s in enumerate(scopes)}
        updates: list[GuardedUpdate] = []
        owners: list[tuple[int, str]] = []
        for i, ss in todo:
            it = items[i]
            label = 1 if it.is_spam else 2
            mfield = "m" + it.digest
            distinct = it.keys.model  # what the token model learns
            for scope in ss:
                old = state[scope][mfield]
                if old == label:
                    continue
                # a stored class other than 1 or 2 is none this code writes: nothing is taken
                # back from it (the field is set to the new class all the same)
                ds = (1 if it.is_spam else 0) - (1 if old == 1 else 0)
                dh = (0 if it.is_spam else 1) - (1 if old == 2 else 0)
                pairs = token_pairs(it.keys.keys, ds, dh)
                counts = {f: d for f, d in (("#s", ds), ("#h", dh), (mfield, label - old)) if d}
                state[scope][mfield] = label
                # the token model: one step toward the new class (a correction is a step toward
                # the right class; the wrong one is not taken back)
                ws, gs, base = weights[scope], sums[scope], read[scope]
                wraws = [ws[f] for f in distinct]
                dws, dgs = token_step(wraws, [gs[f] for f in distinct], it.is_spam)
                wd: dict[str, int] = {}
                gd: dict[str, int] = {}
                for f, wr, dw, dg in zip(distinct, wraws, dws, dgs, strict=True):
                    if dw:
                        if wr and not base[f]:
                            # empty when read, written by an update before this one that may
                            # not be made: this one adds W_MOD too (a weight reads modulo W_MOD)
                            dw += W_MOD
                        ws[f] += dw
                        wd[f] = dw
                    if dg:
                        gs[f] += dg
                        gd[f] = dg
                wd["#s" if it.is_spam else "#h"] = 1  # steps taken toward each class (none taken back)
                updates.append(GuardedUpdate(scope_key(scope), mfield, old,
                                             ((scope_key(scope), counts), (weight_key(scope), wd),
                                              (grad_key(scope), gd)),
                                             ((scope_key(scope), pairs),)))
                owners.append((i, scope))
        return updates, owners

    def _write(self, updates: Sequence[GuardedUpdate]) -> list[bool]:
        made = self.store.apply_guarded(updates)
        forget_cached(self.store, [c for u in updates for c in (*u.deltas, *u.pairs)])
        return made

    def forget(self, m: SaMessage, scopes: Sequence[str] = ("global",), digest: str | None = None) -> bool:
        digest = digest or message_digest(m)
        mfield = "m" + digest
        keys = message_keys(m).keys
        forgot = False
        todo = list(dict.fromkeys(scopes))
        for _ in range(LEARN_TRIES):
            current = self.store.counters([(scope_key(s), [mfield]) for s in todo])
            updates: list[GuardedUpdate] = []
            owners: list[str] = []
            for scope, (old,) in zip(todo, current, strict=True):
                if old not in (1, 2):  # never learned there, or a class this code never writes
                    continue
                pairs = token_pairs(keys, -1, 0) if old == 1 else token_pairs(keys, 0, -1)
                counts = {"#s" if old == 1 else "#h": -1, mfield: -old}
                updates.append(GuardedUpdate(scope_key(scope), mfield, old, ((scope_key(scope), counts),),
                                             ((scope_key(scope), pairs),)))
                owners.append(scope)
            if not updates:
                break
            made = self._write(updates)
            forgot = forgot or any(made)
            todo = [s for s, ok in zip(owners, made, strict=True) if not ok]
            if not todo:
                break
        return forgot

    def stats(self, scope: str = "global") -> dict[str, int]:
        (ns, nh), = self.store.counters([(scope_key(scope), ["#s", "#h"])])
        (ts, th), = self.store.counters([(weight_key(scope), ["#s", "#h"])])
        return {"spam_learned": ns, "ham_learned": nh, "fields": self.store.counter_fields(scope_key(scope)),
                "token_model_spam": ts, "token_model_ham": th,
                "token_weights": max(0, self.store.counter_fields(weight_key(scope)) - (ts > 0) - (th > 0))}

    def wipe(self, scope: str) -> int:
        """Forget everything the scope learned: the counts and the token model."""
        n = self.store.delete(scope_key(scope), weight_key(scope), grad_key(scope))
        cache = field_cache(self.store)
        if cache is not None:
            cache.clear()
        return n
