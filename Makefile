.PHONY: run test lint bench

run:
	bash scripts/run.sh

test:
	bash scripts/test.sh

lint:
	# the same gates run in the suite (tests/unit/test_lint.py): ruff, and mypy --strict on the core
	.venv/bin/python -m pytest -q -p no:cacheprovider tests/unit/test_lint.py

bench:
	.venv/bin/python bench/bench.py --n 2000 --rounds 3
