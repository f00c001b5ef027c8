# telerad — make help
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
export TELERAD_MODE ?= demo
PYTEST_ARGS ?=
# pytest-xdist workers (issue 13): JOBS=1 runs pytest in one process. Tests that must not overlap share the xdist
# group "serial" (tests/conftest.py SERIAL_TESTS), so --dist loadgroup runs them one at a time on one worker.
JOBS ?= 2
XDIST := $(if $(filter-out 0 1,$(JOBS)),-n $(JOBS) --dist loadgroup,)
PYTEST := $(PY) -m pytest $(XDIST)
# Every phase of make test is timed on its own line (scripts/phase.sh); pytest's exit 5 (no test) fails it.
PHASE := bash $(CURDIR)/scripts/phase.sh
# make test on PostgreSQL: only where the dialect or locking matters (tests/conftest.py POSTGRESQL_PATHS).
PG_SUBSET := -m "postgresql and not e2e"
PG_ALL := -m "not e2e"

.PHONY: help setup venv web run test test-all-db test-sqlite test-postgres test-web test-long lint fmt bench clean

help: ## 显示帮助 / list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[dev]'
	touch $@

venv: $(VENV)/.installed ## 创建 .venv 并安装（可编辑模式）

# npm ci's postinstall applies web/patches/ (patch-package): a changed patch installs again
web/node_modules/.installed: web/package.json web/package-lock.json $(wildcard web/patches/*.patch)
	cd web && npm ci --no-audit --no-fund --loglevel=error
	touch $@

web/dist/index.html: web/node_modules/.installed $(shell find web/src -type f 2>/dev/null) web/index.html web/vite.config.ts
	cd web && $(PHASE) setup "type check" npm run typecheck --silent
	cd web && $(PHASE) setup "vite build" npm run build:only --silent

web: web/dist/index.html ## 构建前端

setup: venv web ## 安装全部依赖并构建前端
	bash scripts/system-deps.sh

run: setup ## 一条命令：安装、构建、迁移、加载演示数据并在 http://127.0.0.1:8080 启动
	$(VENV)/bin/telerad db upgrade
	$(VENV)/bin/telerad demo
	$(VENV)/bin/telerad run

# The setup steps and test phases of make test each print one "[phase] ..." line with their time, and the summary
# at the end lists them again with the setup and test totals (scripts/phase-summary.sh).
test: export TELERAD_PHASES := $(CURDIR)/test-artifacts/phases.tsv
test: ## 运行全部测试：lint、Vitest、SQLite 上全部 Python 测试、PostgreSQL 上与方言相关的测试、浏览器端到端
	@mkdir -p test-artifacts && : > $(TELERAD_PHASES)
	@$(PHASE) setup venv $(MAKE) --no-print-directory venv
	@$(PHASE) setup "npm ci" $(MAKE) --no-print-directory web/node_modules/.installed
	@$(MAKE) --no-print-directory web
	@$(PHASE) setup apt bash scripts/system-deps.sh
	@$(PHASE) setup postgresql bash scripts/ensure-postgres.sh
	@$(PHASE) test lint $(MAKE) --no-print-directory lint
	@$(PHASE) test vitest $(MAKE) --no-print-directory test-web
	@$(PHASE) test "pytest sqlite" env TELERAD_TEST_DB=sqlite $(PYTEST) $(PYTEST_ARGS)
	@$(PHASE) test "pytest postgresql" env TELERAD_TEST_DB=postgresql $(PYTEST) $(PG_SUBSET) $(PYTEST_ARGS)
	@bash scripts/phase-summary.sh $(TELERAD_PHASES)

test-all-db: setup ## 全部 Python 测试在 SQLite 与 PostgreSQL 上各跑一遍（make test 在 PostgreSQL 上只跑方言相关的）
	bash scripts/ensure-postgres.sh
	TELERAD_TEST_DB=sqlite $(PYTEST) $(PYTEST_ARGS)
	TELERAD_TEST_DB=postgresql $(PYTEST) $(PG_ALL) $(PYTEST_ARGS)

test-sqlite: venv ## 仅 SQLite 上的 Python 测试
	TELERAD_TEST_DB=sqlite $(PYTEST) $(PYTEST_ARGS)

test-postgres: venv ## 仅 PostgreSQL 上的全部 Python 测试
	bash scripts/ensure-postgres.sh
	TELERAD_TEST_DB=postgresql $(PYTEST) $(PG_ALL) $(PYTEST_ARGS)

# Vitest's default is one worker fewer than the cores: one on this 2-core machine (issue 13: 294 s → 142 s with two
# under the same load).
test-web: web/node_modules/.installed ## 前端单元测试（Vitest）
	cd web && npm test --silent -- --maxWorkers=$(JOBS) --minWorkers=1

test-long: setup ## 长时间检查（大量 hypothesis 样例等），SQLite 与 PostgreSQL 上全部测试，CI 不运行
	bash scripts/ensure-postgres.sh
	TELERAD_LONG=1 TELERAD_TEST_DB=sqlite $(PYTEST) -m "slow or not slow" $(PYTEST_ARGS)
	TELERAD_LONG=1 TELERAD_TEST_DB=postgresql $(PYTEST) -m "(slow or not slow) and not e2e" $(PYTEST_ARGS)

lint: venv ## ruff、分层约束（import-linter）、类型检查（mypy：engine 与 dicom）
	$(VENV)/bin/ruff check engine api telerad tests bench alembic dicom
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/mypy

fmt: venv ## ruff 格式化
	$(VENV)/bin/ruff format engine api telerad tests bench dicom
	$(VENV)/bin/ruff check --fix engine api telerad tests bench dicom

# Every benchmark under bench/ prints one JSON object (those with a database: {"sqlite": {…}, "postgresql": {…}});
# make bench runs them all and keeps each object in bench-results/<name>.json. Never part of make test.
BENCHES := bench_api bench_engine bench_dicom bench_dicomweb bench_transcode bench_validate bench_viewer
bench: setup ## 运行全部基准测试（每个输出一个 JSON，保存在 bench-results/）
	bash scripts/ensure-postgres.sh
	@mkdir -p bench-results
	@set -e; for b in $(BENCHES); do \
	  echo "[bench] $$b"; $(PY) bench/$$b.py > bench-results/$$b.json; cat bench-results/$$b.json; echo; \
	done

clean: ## 删除构建产物与本地数据
	rm -rf web/dist instance .pytest_cache
