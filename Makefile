.PHONY: run test lint bench

run:
	bash scripts/run.sh

test:
	bash scripts/test.sh

lint:  
	.venv/bin/ruff check gateway_milter webadmin quarantine reports config tests
	.venv/bin/mypy --strict --ignore-missing-imports gateway_milter/verdict.py gateway_milter/context.py \
	    gateway_milter/pipeline gateway_milter/policy gateway_milter/store/msglog.py gateway_milter/store/quarantine.py

bench:
	.venv/bin/python bench/bench.py --n 2000 --rounds 3
