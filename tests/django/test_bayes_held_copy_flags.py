"""A quarantined copy is held as it arrived: the gateway tagged nothing, and a flag on it
(another filter's, or one forged in the gateway's own form) leaves its Subject as the milter
read it. Before, "mark as ham" took "[SPAM]" off and learned another message than the one
autolearn had learned as spam: it was then counted as spam and as ham."""

from __future__ import annotations

import pytest

from gateway_milter.antispam.bayes import BayesClassifier
from gateway_milter.store.memory import MemoryStore
from tests.django.conftest import World
from tests.unit.antispam.test_bayes_own_subject_tag import SENT, flagged

pytestmark = pytest.mark.usefixtures("eager_tasks")


def test_a_held_copy_is_corrected_as_the_message_learned(world: World, store: MemoryStore) -> None:
    from quarantine.services import read_message
    from quarantine.services import store as qstore
    from webadmin.antispam_tasks import learn_bytes, train_message
    from webadmin.services import do_set_layer_settings

    do_set_layer_settings("scoring", {"subject_tag": "[SPAM]"})
    m = world.a.qmessage
    raw = flagged(SENT, b"[SPAM] Cheap watches for you")
    (qstore().root / m.storage_path).write_bytes(raw)
    assert read_message(m) == raw
    assert learn_bytes(raw, True, ["global"], tags=())  # as autolearn learned it at the milter
    train_message.delay("ham", quarantine_ids=[m.qid], scopes=["global"])
    st = BayesClassifier(store).stats("global")
    assert (st["spam_learned"], st["ham_learned"]) == (0, 1)
