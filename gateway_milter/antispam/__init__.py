"""Anti-spam engines used by the spam layers: SpamAssassin-format rules (:mod:`.sarules`,
:mod:`.engine`), the message view they match against (:mod:`.saview`), the Bayesian
tokenizer and classifier (:mod:`.tokenizer`, :mod:`.bayes`) and URL extraction (:mod:`.urls`).

Everything here is Django-free and compiled once per process (or per policy snapshot).
"""
