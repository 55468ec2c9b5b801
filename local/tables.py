"""Creates the memory tables locally: the memory library's own helper, from the one key schema."""

from memory.tables import control_plane_client, create_table_request, ensure_tables

__all__ = ["control_plane_client", "create_table_request", "ensure_tables"]
