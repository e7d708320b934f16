# The two commands: `make up` and `make test`. Both do all set-up on a fresh Debian
# machine (as root): the virtualenv, the project, and the system packages tests need.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
# Debian packages the test suite drives for real.
APT_PACKAGES := etcd-server openssl curl iptables iproute2
APT_BINARIES := etcd openssl curl iptables ip

.PHONY: up test venv system-deps protos schema clean bench bench-quick bench-deps

up: $(STAMP)
	$(VENV)/bin/isthmus up

test: $(STAMP) system-deps
	$(PY) -m pytest -q

venv: $(STAMP)

$(STAMP): pyproject.toml setup.py
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on PATH"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[dev]'
	# xds-protos overwrites some opentelemetry-proto modules: put them back.
	$(PIP) install -q --force-reinstall --no-deps "$$(grep -o 'opentelemetry-proto==[0-9.]*' pyproject.toml)"
	$(PY) -c "import isthmus.shared.protos.galley_pb2, envoy.config.cluster.v3.cluster_pb2, opentelemetry.proto.trace.v1.trace_pb2, opentelemetry.exporter.otlp.proto.grpc.trace_exporter, aetcd"
	# Bytecode up front, as a wheel install would have it: an editable install otherwise
	# compiles every module at each start (in memory too, when PYTHONDONTWRITEBYTECODE is set).
	$(PY) -m compileall -q -j 0 shared services proxy isthmus samples > /dev/null
	touch $(STAMP)

system-deps:
	@missing=""; i=0; pkgs=($(APT_PACKAGES)); \
	for b in $(APT_BINARIES); do command -v $$b >/dev/null || missing="$$missing $${pkgs[$$i]}"; i=$$((i+1)); done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	  else echo "missing:$$missing (run as root to install them; tests that need them will skip)"; fi; \
	fi

protos: $(STAMP)
	PYTHON=$(PY) bash tools/gen_protos.sh

schema: $(STAMP)
	$(PY) tools/gen_schema.py > shared/config/schema/crds.json
	$(PY) tools/gen_types.py > shared/config/types.py

clean:
	rm -rf $(VENV) build *.egg-info

# Benchmarks (not part of `make test`): the tools the suite drives, from Debian (installed as root).
BENCH_PACKAGES := wrk nginx haproxy nghttp2-client linux-perf etcd-server openssl
BENCH_BINARIES := wrk nginx haproxy h2load perf etcd openssl

bench-deps:
	@missing=""; i=0; pkgs=($(BENCH_PACKAGES)); \
	for b in $(BENCH_BINARIES); do command -v $$b >/dev/null || [ -x /usr/sbin/$$b ] || missing="$$missing $${pkgs[$$i]}"; i=$$((i+1)); done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	  else echo "missing:$$missing (run as root to install them; bench/run.py names what each is for)"; fi; \
	fi

bench: $(STAMP) bench-deps
	$(PY) -m bench.run --full

bench-quick: $(STAMP) bench-deps
	$(PY) -m bench.run --quick
