"""``sarules.known_directive`` (which lines of the web admin's rules the layer reads; others are
a warning) lists the directive names a second time beside the parser's branches. This test
reads the parser's source and keeps the two the same: every name a branch of ``_Parser.feed`` or
``_Parser.directive`` compares ``word`` with is known, and every known name has a branch."""

from __future__ import annotations

import ast
import inspect
import textwrap

from gateway_milter.antispam import sarules


def _branch_words() -> set[str]:
    words: set[str] = set()
    for fn in (sarules._Parser.feed, sarules._Parser.directive):
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Compare) and isinstance(node.left, ast.Name) and node.left.id == "word"):
                continue
            for op, right in zip(node.ops, node.comparators, strict=True):
                if isinstance(op, ast.Eq) and isinstance(right, ast.Constant) and isinstance(right.value, str):
                    words.add(right.value)
                elif isinstance(op, ast.In) and isinstance(right, (ast.Tuple, ast.Set, ast.List)):
                    words |= {e.value for e in right.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
                elif isinstance(op, ast.In) and isinstance(right, ast.Name):
                    words |= set(getattr(sarules, right.id))  # RULE_KINDS, ADDRLIST_DIRECTIVES, ...
    return words


def test_every_directive_the_parser_reads_is_known_and_the_other_way() -> None:
    branches = _branch_words()
    assert len(branches) > 30 and {"score", "describe", "tflags", "body", "meta", "ifplugin"} <= branches
    assert sorted(w for w in branches if not sarules.known_directive(w)) == []
    listed = (set(sarules.RULE_KINDS) | set(sarules._OTHER_DIRECTIVES) | set(sarules.ADDRLIST_DIRECTIVES)
              | set(sarules.RCVDLIST_DIRECTIVES) | set(sarules.URIHOST_DIRECTIVES))
    assert sorted(listed - branches) == []


def test_settings_the_layer_does_not_read_are_not_known() -> None:
    for word in ("required_score", "report", "add_header", "rewrite_header", "use_bayes", "bayes_path", "lang"):
        assert not sarules.known_directive(word), word
