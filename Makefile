# telerad — make help
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
export TELERAD_MODE ?= demo
PYTEST_ARGS ?=

.PHONY: help setup venv web run test test-python test-sqlite test-postgres test-web test-e2e test-long lint fmt bench clean

help: ## 显示帮助 / list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[dev]'
	touch $@

venv: $(VENV)/.installed ## 创建 .venv 并安装（可编辑模式）

web/node_modules/.installed: web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund --loglevel=error
	touch $@

web/dist/index.html: web/node_modules/.installed $(shell find web/src -type f 2>/dev/null) web/index.html web/vite.config.ts
	cd web && npm run build --silent

web: web/dist/index.html ## 构建前端

setup: venv web ## 安装全部依赖并构建前端
	bash scripts/system-deps.sh

run: setup ## 一条命令：安装、构建、迁移、加载演示数据并在 http://127.0.0.1:8080 启动
	$(VENV)/bin/telerad db upgrade
	$(VENV)/bin/telerad demo
	$(VENV)/bin/telerad run

test: setup ## 运行全部测试（SQLite + PostgreSQL + 前端单元 + 浏览器端到端）
	bash scripts/ensure-postgres.sh
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory test-web
	TELERAD_TEST_DB=sqlite $(PY) -m pytest $(PYTEST_ARGS)
	TELERAD_TEST_DB=postgresql $(PY) -m pytest -m "not e2e" $(PYTEST_ARGS)

test-sqlite: venv ## 仅 SQLite 上的 Python 测试
	TELERAD_TEST_DB=sqlite $(PY) -m pytest $(PYTEST_ARGS)

test-postgres: venv ## 仅 PostgreSQL 上的 Python 测试
	TELERAD_TEST_DB=postgresql $(PY) -m pytest -m "not e2e" $(PYTEST_ARGS)

test-web: web/node_modules/.installed ## 前端单元测试（Vitest）
	cd web && npm test --silent

test-long: setup ## 长时间检查（大量 hypothesis 样例等），CI 不运行
	TELERAD_LONG=1 TELERAD_TEST_DB=sqlite $(PY) -m pytest -m "slow or not slow" $(PYTEST_ARGS)

lint: venv ## ruff 检查
	$(VENV)/bin/ruff check engine api telerad tests bench alembic dicom

fmt: venv ## ruff 格式化
	$(VENV)/bin/ruff format engine api telerad tests bench dicom
	$(VENV)/bin/ruff check --fix engine api telerad tests bench dicom

bench: setup ## 基准测试（输出 JSON）
	bash scripts/ensure-postgres.sh
	$(PY) bench/bench_api.py

clean: ## 删除构建产物与本地数据
	rm -rf web/dist instance .pytest_cache
