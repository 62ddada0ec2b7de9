"""WSGI entry point for gunicorn: ``gunicorn -c gembus/gunicorn_conf.py gembus.wsgi:app``."""

from gembus.bootstrap import build

app = build().app
