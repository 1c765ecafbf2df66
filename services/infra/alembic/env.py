"""Alembic environment shared by the three services. The caller (services.infra.migrations)
passes the service's connection, metadata and version table in `config.attributes`; each
service keeps its own frozen revision scripts under services/<service>/migrations/."""

from alembic import context

config = context.config
attributes = config.attributes


def run_migrations_online() -> None:
    connection = attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=attributes["target_metadata"],
        version_table=attributes["version_table"],
        # SQLite alters most tables by copying them; batch mode does that for us.
        render_as_batch=True,
        compare_type=True,
        include_object=attributes.get("include_object"),
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported; run them online")
run_migrations_online()
