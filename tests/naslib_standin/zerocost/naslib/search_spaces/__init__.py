"""``naslib.search_spaces``."""
