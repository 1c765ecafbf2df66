# LAPOR front door. Every target works on a fresh clone: `make up` installs what it needs.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PROTO_FILES := $(wildcard protos/lapor/v1/*.proto)

.PHONY: help install up down status test test-fast protos lint bench model clean

help:
	@echo "make up      - install what is missing, start RabbitMQ if needed and the three services"
	@echo "make down    - stop what 'make up' started"
	@echo "make test    - run the whole test suite (starts RabbitMQ/PostgreSQL if needed)"
	@echo "make protos  - regenerate lapor/v1 from protos/"
	@echo "make lint    - ruff"
	@echo "make bench   - benchmarks in bench/"
	@echo "make model   - train the report classifier from its corpus (and corrections) into var/model"

# A fresh clone gets a classifier model here; an existing usable one is left alone (quick).
install: $(VENV)/.installed
	@$(PY) -m services.routing model build --if-missing

$(VENV)/.installed: pyproject.toml constraints.txt
	scripts/bootstrap.sh
	@touch $@

# Trains the classifier from the corpus and routing's corrections, measures it on the
# held-out split and makes it current (ROUTING_MODEL_DIR, default var/model).
model: $(VENV)/.installed
	$(PY) -m services.routing model build

up: install
	scripts/up.sh

down:
	scripts/down.sh

status:
	scripts/up.sh --status

test: install
	scripts/test.sh

protos: install
	$(PY) -m grpc_tools.protoc -I protos --python_out=. --pyi_out=. --grpc_python_out=. $(PROTO_FILES)
	@touch lapor/__init__.py lapor/v1/__init__.py

lint: install
	$(VENV)/bin/ruff check services tests bench tools

bench: install
	$(PY) -m bench

clean:
	rm -rf var
