"""The admin's unmanaged models: permissions only, no table."""

from __future__ import annotations

from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies: list[tuple[str, str]] = []  # type: ignore[misc]

    operations = [
        migrations.CreateModel(
            name="Connection",
            fields=[("id", models.CharField(max_length=300, primary_key=True, serialize=False))],
            options={
                "managed": False,
                "default_permissions": ("view", "change"),
                "verbose_name": "connection",
                "verbose_name_plural": "connections",
            },
        ),
        migrations.CreateModel(
            name="Room",
            fields=[("name", models.CharField(max_length=300, primary_key=True, serialize=False))],
            options={"managed": False, "default_permissions": ("view", "change")},
        ),
        migrations.CreateModel(
            name="Node",
            fields=[
                ("node_id", models.CharField(max_length=12, primary_key=True, serialize=False))
            ],
            options={"managed": False, "default_permissions": ("view",)},
        ),
    ]
