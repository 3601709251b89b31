"""Where the milter gets its policy: an atomically swapped snapshot, refreshed by polling the
published version (and immediately on SIGHUP). Loading never blocks a message: threads read
``current()`` (one attribute read) while a background thread builds the next snapshot."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from gateway_milter.policy.snapshot import PolicySnapshot

log = logging.getLogger("bulwark.policy")

# loader(current_version) -> (version, document) when a newer one exists, else None
Loader = Callable[[int], tuple[int, dict[str, Any]] | None]


class StaticPolicyProvider:
    def __init__(self, snapshot: PolicySnapshot) -> None:
        self._snapshot = snapshot

    def current(self) -> PolicySnapshot:
        return self._snapshot

    def reload(self) -> bool:
        return False


class PollingPolicyProvider:
    def __init__(self, loader: Loader, interval: float = 2.0) -> None:
        self._loader = loader
        self._interval = interval
        self._snapshot = PolicySnapshot.empty()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._reload_lock = threading.Lock()
        self.last_error: str | None = None
        self.reload()

    def current(self) -> PolicySnapshot:
        return self._snapshot

    def reload(self) -> bool:
        """Load a newer published policy if there is one; True when the snapshot changed."""
        with self._reload_lock:
            try:
                found = self._loader(self._snapshot.version)
                if found is None:
                    return False
                version, doc = found
                snap = PolicySnapshot.from_document(doc, version)
                snap.system_rules(None)  # compile eagerly, off the hot path
                from gateway_milter.policy.evaluate import engine_for

                engine_for(snap)
            except Exception as e:
                self.last_error = f"{type(e).__name__}: {e}"
                log.exception("policy reload failed; keeping version %s", self._snapshot.version)
                return False
            self._snapshot = snap
            self.last_error = None
            log.info("policy version %s loaded", version)
            return True

    def request_reload(self) -> None:
        self._wake.set()

    def start(self) -> None:
        def loop() -> None:
            while not self._stop.is_set():
                self._wake.wait(self._interval)
                self._wake.clear()
                if not self._stop.is_set():
                    self.reload()

        threading.Thread(target=loop, name="policy-poll", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
