# The two commands: `make run` (set up and start everything) and `make test` (set up and test).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# `make run` installs what the app needs and nothing else; `make test` adds the test extra to the
# same venv. One stamp per install, so editing pyproject.toml reinstalls what each one uses.
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test

.PHONY: run test install install-test lint bench clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(RUN_STAMP): pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -e .
	touch $(RUN_STAMP)

$(TEST_STAMP): pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(TEST_STAMP)

install: $(RUN_STAMP)

install-test: $(TEST_STAMP)

# .env holds SECRET_KEY (and the encryption key derived from it): readable by its owner only.
.env:
	@umask 077 && $(BIN)/python -c "import secrets; print('SECRET_KEY=' + secrets.token_urlsafe(50))" > .env
	@echo "wrote .env with a new SECRET_KEY"

run: $(RUN_STAMP) .env
	@chmod 600 .env
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	$(BIN)/python manage.py ensureadmin
	@echo "cronplane: http://127.0.0.1:$${PORT:-8000}/ (web + worker; Ctrl-C stops both)"
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m scheduler_site.procfile start --port $${PORT:-8000}

test: $(TEST_STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(TEST_STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) staticfiles .pytest_cache test_db.sqlite3*
