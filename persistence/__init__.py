"""SQLAlchemy 2.x tables, repositories, the unit of work and alembic migrations."""
