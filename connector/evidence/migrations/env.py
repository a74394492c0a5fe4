"""Alembic's entry point: runs the migrations on the connection that
connector.evidence.database.Database.upgrade hands over (no alembic.ini)."""

from alembic import context

from connector.evidence.schema import metadata

context.configure(connection=context.config.attributes["connection"], target_metadata=metadata,
                  render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
